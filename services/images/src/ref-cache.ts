import type { FileRef } from './db/images.ts';

/**
 * Which file an image id points at, remembered for a short while. An id's content never changes;
 * only a delete ends it. This process forgets a deleted id at once; other replicas may serve it
 * for up to `ttlMs` more, far less than the year `Cache-Control: immutable` already lets every
 * HTTP cache keep it. Saves a database round trip on the hottest read.
 */
export class RefCache {
  readonly #entries = new Map<string, { ref: FileRef; until: number }>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;

  constructor(ttlMs: number, maxEntries = 100_000) {
    this.#ttlMs = ttlMs;
    this.#maxEntries = maxEntries;
  }

  /** The remembered reference, unless it is older than the time to live. */
  get(id: string): FileRef | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    if (entry.until < Date.now()) {
      this.#entries.delete(id);
      return undefined;
    }
    return entry.ref;
  }

  /** Remembers a reference; the oldest entry goes when the cache is full. */
  set(id: string, ref: FileRef): void {
    if (this.#ttlMs <= 0) return;
    this.#entries.delete(id);
    this.#entries.set(id, { ref, until: Date.now() + this.#ttlMs });
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  /** Forgets an id (it was deleted here). */
  delete(id: string): void {
    this.#entries.delete(id);
  }
}
