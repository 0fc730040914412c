import { ConfigError } from '@berth/service-kit';
import type { ImagesConfig } from '../config.ts';
import { type RelayHooks, type RelaySettings, retryHorizonMs } from './relay.ts';
import type { StreamSettings } from './stream.ts';

/** What the images app needs for events beyond the outbox rows it always writes. */
export interface EventsOptions {
  natsUrl: string;
  stream: StreamSettings;
  relay: RelaySettings;
  /** How often an open feed sends a comment line so proxies keep it open. */
  heartbeatMs: number;
  /** Bytes one open feed may send per second, a second's worth at once; 0 for no limit. */
  feedBytesPerSecond?: number;
  /** false: connect and serve the feed, but leave publishing to other processes (tests). */
  relayEnabled?: boolean;
  hooks?: RelayHooks;
}

/**
 * The events settings from the validated environment. A duplicate window shorter than the relay's
 * retry horizon stops the start: a republished event would then be stored twice.
 */
export function eventsOptions(config: ImagesConfig): EventsOptions {
  const horizon = retryHorizonMs({ publishTimeoutMs: config.OUTBOX_PUBLISH_TIMEOUT_MS, pollMs: config.OUTBOX_POLL_MS });
  if (config.EVENTS_DUPLICATE_WINDOW_MS < horizon) {
    throw new ConfigError(
      `EVENTS_DUPLICATE_WINDOW_MS (${config.EVENTS_DUPLICATE_WINDOW_MS}) must be at least ${horizon}, the time the outbox relay may publish an event again (3 × (OUTBOX_PUBLISH_TIMEOUT_MS + 5000 + OUTBOX_POLL_MS)); raise it or lower those`,
    );
  }
  return {
    natsUrl: config.NATS_URL,
    stream: {
      name: config.EVENTS_STREAM,
      subjectPrefix: config.EVENTS_SUBJECT_PREFIX,
      duplicateWindowMs: config.EVENTS_DUPLICATE_WINDOW_MS,
      maxAgeMs: config.EVENTS_MAX_AGE_MS,
      maxBytes: config.EVENTS_MAX_BYTES,
      replicas: config.EVENTS_REPLICAS,
    },
    relay: {
      batch: config.OUTBOX_BATCH,
      pollMs: config.OUTBOX_POLL_MS,
      publishTimeoutMs: config.OUTBOX_PUBLISH_TIMEOUT_MS,
      retentionMs: config.OUTBOX_RETENTION_MS,
      pruneEveryMs: config.OUTBOX_PRUNE_INTERVAL_MS,
    },
    heartbeatMs: config.EVENTS_HEARTBEAT_MS,
    feedBytesPerSecond: config.EVENTS_FEED_BYTES_PER_S,
  };
}
