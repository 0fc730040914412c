import { resolve } from 'node:path';
import type { ImagesConfig } from '../config.ts';
import { parseDuration } from '../duration.ts';
import { replicaId } from './claims.ts';
import type { InboxOptions } from './inbox.ts';

/** The settings the inbox reads; all but INBOX_DIR have defaults, so a test may give only the folder. */
export type InboxConfig = Pick<ImagesConfig, 'MAX_UPLOAD_BYTES' | 'MAX_PIXELS'> &
  Partial<
    Pick<
      ImagesConfig,
      | 'INBOX_DIR'
      | 'INBOX_SCAN_INTERVAL'
      | 'INBOX_SETTLE'
      | 'INBOX_CLAIM_TIMEOUT'
      | 'INBOX_KEEP'
      | 'INBOX_MAX_FILES'
      | 'INBOX_CONCURRENCY'
    >
  >;

const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;

/**
 * The inbox's options, scan interval and how long handled files are kept (`keepMs`, 0: for ever)
 * from the configuration, or undefined when INBOX_DIR is empty (the inbox is off). A duration that
 * does not parse is a ConfigError naming the variable.
 */
export function inboxSettings(
  config: InboxConfig,
): { everyMs: number; keepMs: number; options: InboxOptions } | undefined {
  if (!config.INBOX_DIR) return undefined;
  const everyMs = parseDuration('INBOX_SCAN_INTERVAL', config.INBOX_SCAN_INTERVAL ?? '30s', {
    min: 100,
    max: 24 * HOUR,
  });
  return {
    everyMs,
    keepMs: parseDuration('INBOX_KEEP', config.INBOX_KEEP ?? '7d', { min: 0, max: 3650 * DAY }),
    options: {
      dir: resolve(config.INBOX_DIR),
      settleMs: parseDuration('INBOX_SETTLE', config.INBOX_SETTLE ?? '5s', { min: 0, max: HOUR }),
      claimTimeoutMs: parseDuration('INBOX_CLAIM_TIMEOUT', config.INBOX_CLAIM_TIMEOUT ?? '10m', {
        min: 10 * SECOND,
        max: 24 * HOUR,
      }),
      maxFiles: config.INBOX_MAX_FILES ?? 200,
      concurrency: config.INBOX_CONCURRENCY ?? 4,
      maxBytes: config.MAX_UPLOAD_BYTES,
      maxPixels: config.MAX_PIXELS,
      replicaId: replicaId(),
    },
  };
}
