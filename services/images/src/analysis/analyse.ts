import { readFile } from 'node:fs/promises';
import { forEachLimit } from '../concurrency.ts';
import type { AnalysisStore, EventRecord, PairRecord } from '../db/analysis.ts';
import type { Store } from '../storage/store.ts';
import { type Finalist, type IndexEntry, indexEntry } from './candidates.ts';
import { DatasetIndexes } from './indexes.ts';
import { type Analysis, analyseBytes, hashDistance, packSignature, unpackSignature } from './signature.ts';
import { finalistScores, PAIR_FLOOR } from './verify.ts';

/**
 * What became of one event: its effect applied, recorded as undecodable, already applied before
 * (a duplicate), or nothing to do because the image is gone.
 */
export type AnalysisResult = 'applied' | 'undecodable' | 'duplicate' | 'gone';

/** True for an operating-system error (EIO, EMFILE, ENOSPC...): the machine, not the image, is the problem. */
function isSystemError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

/** An image of the batch analysed and signed, with its entry for the candidate index. */
interface Signed {
  event: CreatedEvent;
  dataset: string;
  analysis: Analysis;
  entry: IndexEntry;
}

/** One created event to apply: its id and its image's. */
export interface CreatedEvent {
  eventId: string;
  imageId: string;
}

/**
 * The images-worker's effect for created events: the difference hash and the near-duplicate
 * signature with its candidate keys on the image row (thumbnails are made on first request).
 * Idempotent by event id: each row update commits together with the event's processed_events
 * row, so a second delivery finds it and changes nothing. Works in batches: one query to look the
 * events up, the files read and analysed a few at a time, one statement to record them all.
 */
export class Analyser {
  readonly #db: AnalysisStore;
  readonly #files: Store;
  readonly #consumer: string;
  readonly #maxPixels: number;
  readonly #concurrency: number;
  readonly #indexes: DatasetIndexes;

  constructor(
    db: AnalysisStore,
    files: Store,
    options: { consumer: string; maxPixels: number; concurrency?: number; indexedImages?: number },
  ) {
    this.#db = db;
    this.#files = files;
    this.#consumer = options.consumer;
    this.#maxPixels = options.maxPixels;
    this.#concurrency = options.concurrency ?? 8;
    this.#indexes = new DatasetIndexes(db, { maxImages: options.indexedImages ?? 200_000 });
  }

  /** Applies one event; see applyBatch. */
  async apply(eventId: string, imageId: string): Promise<AnalysisResult> {
    const [result] = await this.applyBatch([{ eventId, imageId }]);
    return result as AnalysisResult;
  }

  /**
   * Applies the effects of a batch of events; the results are in the events' order. Throws only
   * for transient trouble (PostgreSQL unavailable, a disk error), and then no event of the batch
   * is recorded: the caller retries it later. An image that cannot be decoded is an outcome,
   * recorded on its row, never retried. Two steps: the signatures are stored first, then each
   * image's candidates are looked up in its data set's index (which then holds every image
   * signed so far, by any replica) and verified, and the pairs and marks recorded together.
   */
  async applyBatch(events: CreatedEvent[]): Promise<AnalysisResult[]> {
    // looked up first so a redelivery skips the decode; record() checks again, race-free
    const found = await this.#db.lookup(this.#consumer, events);
    const results = new Map<string, AnalysisResult>();
    const records: EventRecord[] = [];
    const work: Array<{ event: CreatedEvent; sha256: string; dataset: string }> = [];
    const taken = new Set<string>();
    for (const event of events) {
      if (taken.has(event.eventId)) continue;
      taken.add(event.eventId);
      const state = found.get(event.eventId);
      if (state?.processed) results.set(event.eventId, 'duplicate');
      else if (state?.sha256 === undefined) records.push(event);
      else work.push({ event, sha256: state.sha256, dataset: state.dataset as string });
    }
    const signed: Signed[] = [];
    await forEachLimit(work, this.#concurrency, async ({ event, sha256, dataset }) => {
      const analysed = await this.#analyse(sha256);
      if ('error' in analysed) records.push({ ...event, outcome: { status: 'failed', error: analysed.error } });
      else signed.push({ event, dataset, analysis: analysed, entry: indexEntry(event.imageId, analysed.signature) });
    });
    if (signed.length) {
      const stored = await this.#db.sign(
        signed.map(({ event, analysis }) => ({ imageId: event.imageId, signature: packSignature(analysis.signature) })),
      );
      const xids = new Map(stored.map((row) => [row.id, row.xid]));
      for (const dataset of new Set(signed.map((item) => item.dataset))) {
        this.#indexes.addSigned(
          dataset,
          signed.flatMap((item) => {
            const xid = xids.get(item.event.imageId);
            return item.dataset === dataset && xid !== undefined ? [{ entry: item.entry, xid }] : [];
          }),
        );
      }
      const pairs = new Map(signed.map((item) => [item.event.imageId, [] as PairRecord[]]));
      for (const item of signed) {
        const found = pairs.get(item.event.imageId) as PairRecord[];
        records.push({ ...item.event, outcome: { status: 'done', hash: item.analysis.hash, pairs: found } });
      }
      await this.#pair(signed, pairs);
    }
    const marked = records.length ? await this.#db.record(this.#consumer, records) : new Set<string>();
    for (const r of records) {
      if (!marked.has(r.eventId)) results.set(r.eventId, 'duplicate');
      else if (!r.outcome) results.set(r.eventId, 'gone');
      else results.set(r.eventId, r.outcome.status === 'done' ? 'applied' : 'undecodable');
    }
    // a second copy of an event in the same batch is a duplicate of the first
    const seen = new Set<string>();
    return events.map((event) => {
      const first = !seen.has(event.eventId);
      seen.add(event.eventId);
      return first ? (results.get(event.eventId) as AnalysisResult) : 'duplicate';
    });
  }

  /** Finds and verifies each signed image's near-duplicates, into its list in `pairs` (its record's). */
  async #pair(signed: Signed[], pairs: Map<string, PairRecord[]>): Promise<void> {
    const finalists = new Map<string, Finalist[]>();
    for (const dataset of new Set(signed.map((item) => item.dataset))) {
      const index = await this.#indexes.current(dataset);
      for (const item of signed) {
        if (item.dataset !== dataset) continue;
        finalists.set(item.event.imageId, index.finalists(item.entry));
      }
    }
    const wanted = [...new Set([...finalists.values()].flat().map((finalist) => finalist.id))];
    const stored = await this.#db.signatures(wanted);
    const others = new Map([...stored].map(([id, bytes]) => [id, unpackSignature(bytes)]));
    for (const item of signed) {
      const found = pairs.get(item.event.imageId) as PairRecord[];
      const present = (finalists.get(item.event.imageId) ?? []).flatMap((finalist) => {
        const other = others.get(finalist.id);
        return other ? [{ id: finalist.id, other }] : [];
      });
      const scores = finalistScores(
        item.analysis.signature,
        present.map((p) => p.other),
      );
      present.forEach(({ id, other }, i) => {
        const score = scores[i] as number;
        if (score < PAIR_FLOOR) return;
        found.push({ otherId: id, score, distance: hashDistance(item.analysis.signature, other) });
      });
    }
  }

  async #analyse(sha256: string): Promise<Analysis | { error: string }> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#files.path(sha256));
    } catch (err) {
      // the file is written before its row commits, so a row without one will never get it
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { error: 'The stored file is missing' };
      throw err;
    }
    try {
      return await analyseBytes(bytes, this.#maxPixels);
    } catch (err) {
      if (isSystemError(err)) throw err;
      return { error: `The image could not be decoded: ${(err as Error).message}` };
    }
  }
}
