import type pg from 'pg';
import { findByContent, type Image, insertImage, type NewImage } from './db/images.ts';
import { withTransaction } from './db/transaction.ts';
import { uuidv7 } from './ids.ts';
import type { ImageInfo } from './inspect.ts';
import { lockFileSharedSql } from './storage/locks.ts';
import { reclaimFiles } from './storage/reclaim.ts';
import type { Staged, Store } from './storage/store.ts';

/** The fields an upload carries besides its bytes. */
export interface UploadFields {
  dataset: string;
  label: string | null;
  split: string | null;
  tags: string[];
  filename: string | null;
}

/** What storing an upload did: a new row, or the one the data set already had for the same bytes. */
export interface Stored {
  image: Image;
  created: boolean;
}

/**
 * Stores one staged, inspected upload. In one transaction: the file's shared lock, the row
 * (ON CONFLICT against the same content in the same data set), the rename into place and the
 * folder fsync, then COMMIT. So the file is durable before the row that points at it commits,
 * and of two uploads of the same bytes racing, one inserts and the other finds its row.
 */
export async function storeUpload(
  pool: pg.Pool,
  store: Store,
  staged: Staged,
  info: ImageInfo,
  fields: UploadFields,
): Promise<Stored> {
  const row: NewImage = {
    id: uuidv7(),
    sha256: staged.sha256,
    bytes: staged.bytes,
    ...info,
    ...fields,
  };
  let placed = false;
  // the file's shared lock comes with BEGIN: from then until COMMIT no sweep can take the file
  try {
    return await withTransaction(
      pool,
      async (tx) => {
        // a conflicting row may be deleted before it is read back; the next round then inserts
        for (let attempt = 0; attempt < 3; attempt++) {
          const created = await insertImage(tx, row);
          const image = created ?? (await findByContent(tx, row.dataset, row.sha256));
          if (!image) continue;
          // also when the row existed: its file may have been lost, and these are the same bytes
          if (created || !(await store.has(row.sha256))) {
            placed = true;
            await store.placeSynced([staged]);
          }
          return { image, created: created !== undefined };
        }
        throw new Error('Image insert kept conflicting with a row that then disappeared');
      },
      lockFileSharedSql(row.sha256),
    );
  } catch (err) {
    // the rename happened but the row did not commit: take the file back if nothing uses it
    if (placed) await reclaimFiles(pool, store, [row.sha256]).catch(() => {});
    throw err;
  } finally {
    await store.discard(staged);
  }
}
