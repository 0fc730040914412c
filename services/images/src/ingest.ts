import type pg from 'pg';
import { findByContent, type Image, insertImage, type NewImage } from './db/images.ts';
import { withTransaction } from './db/transaction.ts';
import { uuidv7 } from './ids.ts';
import type { ImageInfo } from './inspect.ts';
import { lockFileSharedSql } from './storage/locks.ts';
import { reclaimFiles } from './storage/reclaim.ts';
import type { Spooled, Staged, Store } from './storage/store.ts';

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
 * Stores one inspected upload. New content in memory is written, flushed, renamed into place and
 * its folder flushed before the transaction starts, so no pooled connection waits on the disk.
 * Then, in one transaction: the file's shared lock, the row (ON CONFLICT against the same content
 * in the same data set) and its event; under the lock the file is checked once more, since a
 * delete or sweep may have taken it before the lock was held, and written again (inside the
 * transaction, the slower way) if so. A large upload spooled to a temp file is renamed inside
 * the transaction. So the file is durable before the row that points at it commits, and of two
 * uploads of the same bytes racing, one inserts and the other finds its row.
 */
export async function storeUpload(
  pool: pg.Pool,
  store: Store,
  upload: Spooled,
  info: ImageInfo,
  fields: UploadFields,
): Promise<Stored> {
  const row: NewImage = {
    id: uuidv7(),
    sha256: upload.sha256,
    bytes: upload.bytes,
    ...info,
    ...fields,
  };
  const staged: Staged[] = upload.staged ? [upload.staged] : [];
  let placed = false;
  const place = async () => {
    const file = upload.data ? await store.stageBytes(upload.data, row.sha256) : upload.staged;
    if (!file || file.placed) throw new Error('The upload has no bytes left to place');
    staged.push(file);
    placed = true;
    await store.placeSynced([file]);
  };
  try {
    // content already on the volume (another data set, an earlier upload) is not written again
    if (upload.data && !(await store.has(row.sha256))) await place();
    return await withTransaction(
      pool,
      async (tx) => {
        // a conflicting row may be deleted before it is read back; the next round then inserts
        for (let attempt = 0; attempt < 3; attempt++) {
          const created = await insertImage(tx, row);
          const image = created ?? (await findByContent(tx, row.dataset, row.sha256));
          if (!image) continue;
          // also when the row existed: its file may have been lost, and these are the same bytes;
          // an in-memory upload's name was just looked up or placed, a spooled one's was not
          const present = upload.data ? store.hasSeen(row.sha256) : await store.has(row.sha256);
          if (!present) await place();
          return { image, created: created !== undefined };
        }
        throw new Error('Image insert kept conflicting with a row that then disappeared');
      },
      // the file's shared lock comes with BEGIN: from then until COMMIT no sweep can take the file
      lockFileSharedSql(row.sha256),
    );
  } catch (err) {
    // renamed into place but the row did not commit: take the file back if nothing uses it
    if (placed) await reclaimFiles(pool, store, [row.sha256]).catch(() => {});
    throw err;
  } finally {
    for (const file of staged) await store.discard(file);
  }
}
