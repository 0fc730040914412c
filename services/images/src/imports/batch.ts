import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import { forEachLimit } from '../concurrency.ts';
import { insertImages, type NewImage } from '../db/images.ts';
import { advanceJob, type JobAdvance } from '../db/jobs.ts';
import { withTransaction } from '../db/transaction.ts';
import { lockFilesShared } from '../storage/locks.ts';
import { reclaimFiles } from '../storage/reclaim.ts';
import type { Staged, Store } from '../storage/store.ts';

/** An image ready to store: its row and its encoded bytes. */
export interface Prepared {
  row: NewImage;
  bytes: Uint8Array;
}

/** Raised when the job stopped being ours while a batch was being committed; the batch is rolled back. */
export class JobTakenOver extends Error {
  constructor(id: string) {
    super(`Import job ${id} is no longer run by this process`);
  }
}

function toWrite(image: Prepared): { bytes: Uint8Array; sha256: string } {
  return { bytes: image.bytes, sha256: image.row.sha256 };
}

/** What committing a batch needs. */
export interface BatchContext {
  pool: pg.Pool;
  store: Store;
  concurrency: number;
  jobId: string;
  owner: string;
  dataset: string;
}

/**
 * Commits one batch of an import. Files not known to be on the volume are written to temp files
 * first, many at a time, outside any transaction. Then, in one transaction: the shared
 * file locks, the renames into place and folder fsyncs, one multi-row INSERT (arrays unnested, ON
 * CONFLICT skipping content the data set holds) and the job's counters. Returns how many rows
 * were new; the rest of the images were duplicates.
 */
export async function commitBatch(
  ctx: BatchContext,
  images: Prepared[],
  step: Omit<JobAdvance, 'imported' | 'duplicates'>,
): Promise<number> {
  const { store } = ctx;
  const unique = new Map<string, Prepared>();
  for (const image of images) if (!unique.has(image.row.sha256)) unique.set(image.row.sha256, image);
  const staged = new Map<string, Staged>();
  const placed: string[] = [];
  try {
    // content some row already points at is on the volume (a sweep cannot take it while rows
    // refer to it), so only the rest is written: one query instead of a stat per image
    const { rows } = await withPostgres(() =>
      ctx.pool.query<{ sha256: string }>({
        name: 'images_known_content',
        text: 'SELECT DISTINCT sha256 FROM images WHERE sha256 = ANY($1::text[])',
        values: [[...unique.keys()]],
      }),
    );
    const known = new Set(rows.map((row) => row.sha256));
    const fresh = [...unique.values()].filter((image) => !known.has(image.row.sha256));
    for (const file of await store.stageMany(fresh.map(toWrite))) staged.set(file.sha256, file);
    return await withTransaction(ctx.pool, async (tx) => {
      await lockFilesShared(tx, unique.keys());
      // known content whose rows went away meanwhile may have been swept; under the lock it stays
      const lost: Prepared[] = [];
      await forEachLimit(
        [...unique.values()].filter((image) => known.has(image.row.sha256)),
        ctx.concurrency,
        async (image) => {
          if (!(await store.has(image.row.sha256))) lost.push(image);
        },
      );
      for (const file of await store.stageMany(lost.map(toWrite))) staged.set(file.sha256, file);
      const files = [...staged.values()];
      placed.push(...files.map((file) => file.sha256));
      // renames and folder syncs: the files are durable in place before the rows commit
      await store.placeSynced(files);
      const inserted = await insertImages(
        tx,
        ctx.dataset,
        [],
        images.map((image) => image.row),
      );
      const ok = await advanceJob(tx, ctx.jobId, ctx.owner, {
        ...step,
        imported: inserted.length,
        duplicates: images.length - inserted.length,
      });
      if (!ok) throw new JobTakenOver(ctx.jobId);
      return inserted.length;
    });
  } catch (err) {
    await forEachLimit(staged.values(), ctx.concurrency, (file) => store.discard(file)).catch(() => {});
    // files renamed into place for rows that did not commit; the sweep gets any left here
    await reclaimFiles(ctx.pool, store, placed).catch(() => {});
    throw err;
  }
}
