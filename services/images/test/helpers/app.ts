import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createPool } from '@berth/service-kit';
import { type AppConfig, buildApp } from '../../src/app.ts';
import { Store } from '../../src/storage/store.ts';

/** A temporary IMAGES_DIR for one test file. */
export async function tempDir(prefix = 'berth-images-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Settings a test may change; limits are small so they are quick to reach, timers off unless asked for. */
export interface TestSettings extends Partial<AppConfig> {
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
}

/** The configuration tests run with. */
export function testConfig(settings: Partial<AppConfig> = {}): AppConfig {
  return {
    LOG_LEVEL: 'silent',
    MAX_UPLOAD_BYTES: 1024 * 1024,
    MAX_IMPORT_BYTES: 64 * 1024 * 1024,
    MAX_PIXELS: 4_000_000,
    SWEEP_INTERVAL_MS: 0,
    SWEEP_GRACE_MS: 0,
    IMPORT_STALE_MS: 60_000,
    IMPORT_MAX_ATTEMPTS: 3,
    VOLUME_MIN_FREE_BYTES: 0,
    MAX_DECODED_BYTES: 200_000_000,
    DECODE_CONCURRENCY: 2,
    DECODE_WAIT_MS: 5000,
    DECODE_TIMEOUT_MS: 15_000,
    THUMBNAIL_ON_DEMAND_PIXELS: 16_000_000,
    IMPORT_BATCH: 100,
    IMPORT_CONCURRENCY: 8,
    FILE_REF_TTL_MS: 10_000,
    ...settings,
  };
}

/** The images app on the given database and folder, as main.ts builds it but without listening. */
export async function testApp(url: string, dir: string, settings: TestSettings = {}) {
  const pool = createPool({
    connectionString: url,
    applicationName: 'berth-images-test',
    max: 8,
    connectTimeoutMs: settings.connectTimeoutMs ?? 1000,
    statementTimeoutMs: settings.statementTimeoutMs ?? 5000,
  });
  const store = new Store(dir);
  const { connectTimeoutMs: _c, statementTimeoutMs: _s, ...config } = settings;
  const app = buildApp(testConfig(config), { pool, store });
  await app.ready();
  return { app, pool, store };
}

/** Temp files left anywhere under the folder: in .tmp/ or as .tmp-* next to content. */
export async function leftovers(root: string): Promise<string[]> {
  const names = await readdir(root, { recursive: true });
  return names.filter((name) => name.startsWith('.tmp/') || basename(name).startsWith('.tmp-')).sort();
}
