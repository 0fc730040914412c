import type pg from 'pg';
import { type Stored, storeUpload, type UploadFields } from './ingest.ts';
import { inspectImage } from './inspect.ts';
import type { Spooled, Store } from './storage/store.ts';

/**
 * Inspects received bytes (415/422 for what is not a storable image) and stores them with
 * storeUpload. The upload route and the inbox both come through here, so every image gets the same
 * checks, the same dedupe and the same event. A temp file left by the spool is always removed.
 */
export async function acceptImage(
  pool: pg.Pool,
  store: Store,
  upload: Spooled,
  fields: UploadFields,
  maxPixels: number,
  kind: 'request' | 'background' = 'background',
): Promise<Stored> {
  try {
    const info = await inspectImage(upload.data ?? (upload.staged?.path as string), maxPixels, kind);
    return await storeUpload(pool, store, upload, info, fields);
  } finally {
    await store.discard(upload.staged);
  }
}
