import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { JobError, JobRow } from '../db/jobs.ts';
import { MAX_JOB_ERRORS } from '../db/jobs.ts';
import {
  type EncodedRecord,
  encodePng,
  FormatError,
  type FormatName,
  type ImportItem,
  openImport,
  type PixelsRecord,
  type Split,
} from '../formats/index.ts';
import { uuidv7 } from '../ids.ts';
import { type ImageInfo, inspectImage } from '../inspect.ts';
import { isLabel, RULES, shown } from '../names.ts';
import type { Store } from '../storage/store.ts';
import { commitStaged, discardStaged, type Prepared, stageBatch } from './batch.ts';

/** The settings an import run works with. */
export interface RunSettings {
  /** Images per batch (one INSERT, one transaction). */
  batch: number;
  /** Files written at once. */
  concurrency: number;
  maxPixels: number;
  /** The largest image an archive entry may be. */
  maxImageBytes: number;
}

/** What a run needs besides the job. */
export interface RunContext {
  pool: pg.Pool;
  store: Store;
  owner: string;
  settings: RunSettings;
  /** Aborted when the run must stop (shutdown, or the job was taken over). */
  signal: AbortSignal;
}

/** Encoded bytes per batch beyond which it is committed early, so big archive images keep memory flat. */
const BATCH_BYTES = 64 * 1024 * 1024;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A batch being filled: the images, the counts to add to the job, and where the source stands. */
class Pending {
  images: Prepared[] = [];
  bytes = 0;
  processed = 0;
  failed = 0;
  errors: JobError[] = [];
  nextIndex: number;
  constructor(nextIndex: number) {
    this.nextIndex = nextIndex;
  }
}

/**
 * Runs an import job from where it stands (`next_index`) to the end of its files. Records are
 * read as a stream and prepared one by one (pixel arrays encoded as PNG, archive images checked
 * by decoding them); every `batch` images are committed with the job's counters in one
 * transaction. Three batches overlap: one commits, the next has its files written meanwhile, and
 * the one after is being prepared; no more are in memory, whatever the data set's size (decision
 * 0109). Returns normally when the source
 * is exhausted; a FormatError means the input is malformed from some record on.
 */
export async function runImport(job: JobRow, ctx: RunContext): Promise<void> {
  const { settings, signal } = ctx;
  const source = await openImport(
    job.files.map((file) => ({ path: file.path, name: file.name })),
    {
      format: (job.format ?? undefined) as FormatName | undefined,
      split: (job.split ?? undefined) as Split | undefined,
      maxPixels: settings.maxPixels,
      maxEntryBytes: settings.maxImageBytes,
    },
  );
  let errorsKept = job.errors.length;
  const batchContext = {
    pool: ctx.pool,
    store: ctx.store,
    concurrency: settings.concurrency,
    jobId: job.id,
    owner: ctx.owner,
    dataset: job.dataset,
  };
  let committing: Promise<unknown> = Promise.resolve();
  let pending = new Pending(job.next_index);

  const flush = async () => {
    const batch = pending;
    pending = new Pending(batch.nextIndex);
    signal.throwIfAborted();
    const step = {
      processed: batch.processed,
      failed: batch.failed,
      errors: batch.errors,
      nextIndex: batch.nextIndex,
      total: source.total ?? null,
    };
    const previous = committing;
    // this batch's files are written while the one before commits; its transaction waits for
    // that commit, so the job's resume position only ever moves forward over committed rows
    const staging = stageBatch(batchContext, batch.images);
    staging.catch(() => {});
    committing = (async () => {
      try {
        await previous;
        signal.throwIfAborted();
      } catch (err) {
        await staging.then((staged) => discardStaged(batchContext, staged)).catch(() => {});
        throw err;
      }
      return commitStaged(batchContext, await staging, step);
    })();
    // keep a rejection from being reported as unhandled before it is awaited
    committing.catch(() => {});
    // the next batch is prepared once the one before this is in: at most three in memory
    await previous;
  };

  const fail = (record: string, message: string) => {
    pending.failed++;
    pending.processed++;
    if (errorsKept < MAX_JOB_ERRORS) {
      pending.errors.push({ record, message });
      errorsKept++;
    }
  };

  const hasWork = () => pending.processed > 0 || pending.nextIndex !== job.next_index;
  try {
    for await (const item of source.records({ from: job.next_index })) {
      signal.throwIfAborted();
      pending.nextIndex = item.index + 1;
      if (item.kind === 'skipped') {
        if (!item.benign) fail(item.name, item.reason);
      } else {
        const prepared = item.kind === 'pixels' ? prepareSync(item, job) : await prepare(item, job, settings);
        if (prepared instanceof Error) fail(recordName(item), prepared.message);
        else {
          pending.images.push(prepared);
          pending.bytes += prepared.bytes.byteLength;
          pending.processed++;
        }
      }
      if (pending.images.length >= settings.batch || pending.bytes >= BATCH_BYTES) await flush();
    }
  } catch (err) {
    // a malformed record ends the job, but the records read before it are kept
    if (err instanceof FormatError && !signal.aborted && hasWork()) await flush();
    await committing;
    throw err;
  }
  if (hasWork()) await flush();
  await committing;
}

function recordName(item: Exclude<ImportItem, { kind: 'skipped' }>): string {
  return item.name ?? `record ${item.index}`;
}

function label(item: Exclude<ImportItem, { kind: 'skipped' }>): Error | undefined {
  if (isLabel(item.label)) return undefined;
  return new Error(`Label ${shown(item.label)} is not valid: it ${RULES.label}`);
}

/** Pixels from IDX or CIFAR-10 as a lossless PNG row, or an Error saying why not. */
function prepareSync(item: PixelsRecord, job: JobRow): Prepared | Error {
  const bad = label(item);
  if (bad) return bad;
  const bytes = encodePng(item);
  return {
    bytes,
    row: {
      id: uuidv7(),
      sha256: sha256(bytes),
      dataset: job.dataset,
      label: item.label,
      split: item.split ?? job.split,
      tags: [],
      format: 'png',
      width: item.width,
      height: item.height,
      channels: item.channels,
      bytes: bytes.length,
      filename: item.name ?? null,
    },
  };
}

/** An image file from an archive, checked by decoding it, or an Error saying why it cannot be stored. */
async function prepare(item: EncodedRecord, job: JobRow, settings: RunSettings): Promise<Prepared | Error> {
  const bad = label(item);
  if (bad) return bad;
  let info: ImageInfo;
  try {
    info = await inspectImage(item.bytes, settings.maxPixels);
  } catch (err) {
    return err as Error;
  }
  return {
    bytes: item.bytes,
    row: {
      id: uuidv7(),
      sha256: sha256(item.bytes),
      dataset: job.dataset,
      label: item.label,
      split: item.split ?? job.split,
      tags: [],
      ...info,
      bytes: item.bytes.length,
      filename: item.name.split('/').pop() ?? null,
    },
  };
}
