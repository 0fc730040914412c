import { stat } from 'node:fs/promises';
import type { AnalysisOutcome, AnalysisStore } from '../db/analysis.ts';
import type { Store } from '../storage/store.ts';
import { dhash } from './dhash.ts';
import { packSignature, signatureKeys, signatureOf } from './signature.ts';

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

/**
 * The images-worker's effect for a created event: the difference hash and the near-duplicate
 * signature with its candidate keys on the image row (thumbnails are made on first request).
 * Idempotent by event id: the row update commits together with the event's processed_events row,
 * so a second delivery finds it and changes nothing.
 */
export class Analyser {
  readonly #db: AnalysisStore;
  readonly #files: Store;
  readonly #consumer: string;
  readonly #maxPixels: number;

  constructor(db: AnalysisStore, files: Store, options: { consumer: string; maxPixels: number }) {
    this.#db = db;
    this.#files = files;
    this.#consumer = options.consumer;
    this.#maxPixels = options.maxPixels;
  }

  /**
   * Applies the effect of event `eventId` on image `imageId`. Throws only for transient trouble
   * (PostgreSQL unavailable, a disk error), which the caller retries later; an image that cannot
   * be decoded is an outcome, recorded on its row, never retried.
   */
  async apply(eventId: string, imageId: string): Promise<AnalysisResult> {
    // checked first so a redelivery skips the decode; record() checks again, race-free
    const { processed, sha256 } = await this.#db.lookup(this.#consumer, eventId, imageId);
    if (processed) return 'duplicate';
    if (sha256 === undefined) {
      return (await this.#db.record(this.#consumer, eventId, imageId)) ? 'gone' : 'duplicate';
    }
    const outcome = await this.#analyse(sha256);
    if (!(await this.#db.record(this.#consumer, eventId, imageId, outcome))) return 'duplicate';
    return outcome.status === 'done' ? 'applied' : 'undecodable';
  }

  async #analyse(sha256: string): Promise<AnalysisOutcome> {
    const path = this.#files.path(sha256);
    try {
      await stat(path);
    } catch (err) {
      // the file is written before its row commits, so a row without one will never get it
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return { status: 'failed', error: 'The stored file is missing' };
      }
      throw err;
    }
    try {
      const [hash, signature] = await Promise.all([dhash(path, this.#maxPixels), signatureOf(path, this.#maxPixels)]);
      return { status: 'done', hash, signature: packSignature(signature), keys: signatureKeys(signature) };
    } catch (err) {
      if (isSystemError(err)) throw err;
      return { status: 'failed', error: `The image could not be decoded: ${(err as Error).message}` };
    }
  }
}
