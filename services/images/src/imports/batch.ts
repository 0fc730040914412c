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

/** A batch whose new content is on disk under temp names, waiting for its transaction. */
export interface StagedBatch {
  images: Prepared[];
  /** One image per distinct content. */
  unique: Map<string, Prepared>;
  /** Content some row pointed at when the batch was staged, so not written again. */
  known: Set<string>;
  /** Temp files by hash, not yet in place. */
  staged: Map<string, Staged>;
}

/**
 * The first half of committing a batch, outside any transaction: content some row already
 * points at is on the volume (a sweep cannot take it while rows refer to it), so one query finds
 * it instead of a stat per image, and the rest is written to temp files, flushed, many at a
 * time. It may run while the batch before is still committing.
 */
export async function stageBatch(ctx: BatchContext, images: Prepared[]): Promise<StagedBatch> {
  const unique = new Map<string, Prepared>();
  for (const image of images) if (!unique.has(image.row.sha256)) unique.set(image.row.sha256, image);
  const { rows } = await withPostgres(() =>
    ctx.pool.query<{ sha256: string }>({
      name: 'images_known_content',
      text: 'SELECT DISTINCT sha256 FROM images WHERE sha256 = ANY($1::text[])',
      values: [[...unique.keys()]],
    }),
  );
  const known = new Set(rows.map((row) => row.sha256));
  const fresh = [...unique.values()].filter((image) => !known.has(image.row.sha256));
  const staged = new Map<string, Staged>();
  for (const file of await ctx.store.stageMany(fresh.map(toWrite))) staged.set(file.sha256, file);
  return { images, unique, known, staged };
}

/** Removes a staged batch's temp files, for a batch that will not be committed. */
export async function discardStaged(ctx: BatchContext, batch: StagedBatch): Promise<void> {
  await forEachLimit(batch.staged.values(), ctx.concurrency, (file) => ctx.store.discard(file));
}

/**
 * The second half, in one transaction: the shared file locks, the renames into place and folder
 * fsyncs, one multi-row INSERT (the rows as one JSON parameter, ON CONFLICT skipping content the
 * data set holds) and the job's counters. Returns how many rows were new; the rest of the images were
 * duplicates. On failure nothing of the batch is left: temp files are removed and files renamed
 * into place for rows that did not commit are reclaimed.
 */
export async function commitStaged(
  ctx: BatchContext,
  batch: StagedBatch,
  step: Omit<JobAdvance, 'imported' | 'duplicates'>,
): Promise<number> {
  const { store } = ctx;
  const { images, unique, known, staged } = batch;
  const placed: string[] = [];
  try {
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
    await discardStaged(ctx, batch).catch(() => {});
    // files renamed into place for rows that did not commit; the sweep gets any left here
    await reclaimFiles(ctx.pool, store, placed).catch(() => {});
    throw err;
  }
}
