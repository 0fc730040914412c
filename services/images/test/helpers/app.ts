import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool } from '@berth/service-kit';
import { buildApp } from '../../src/app.ts';
import { Store } from '../../src/storage/store.ts';

/** A temporary IMAGES_DIR for one test file. */
export async function tempDir(prefix = 'berth-images-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Settings a test may change; the rest are small so limits are quick to reach. */
export interface TestSettings {
  maxUploadBytes?: number;
  maxPixels?: number;
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
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
  const app = buildApp(
    {
      LOG_LEVEL: 'silent',
      MAX_UPLOAD_BYTES: settings.maxUploadBytes ?? 1024 * 1024,
      MAX_PIXELS: settings.maxPixels ?? 4_000_000,
    },
    { pool, store },
  );
  await app.ready();
  return { app, pool, store };
}
