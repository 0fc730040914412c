import type { AnalysisStore, SignedCursor } from '../db/analysis.ts';
import { FIRST_ID } from '../db/analysis.ts';
import { CandidateIndex, type IndexEntry, indexEntry } from './candidates.ts';
import { unpackSignature } from './signature.ts';

/** Rows read per query while loading or catching up. */
const PAGE = 5000;

interface Held {
  index: CandidateIndex;
  /** Where the next catch-up reads from, and the rows of those transactions read already. */
  from: { xid: bigint; known: Array<{ id: string; xid: bigint }> };
  usedAt: number;
}

/**
 * The candidate indexes of the data sets this worker analyses, loaded from PostgreSQL on first
 * use and brought up to date before each use with what every replica signed since: the rows of
 * transactions the last read could not see yet (signed_xid from that read's oldest running
 * transaction on), less the ones it did see. Data sets used least recently are dropped once the
 * indexes hold more than `maxImages` images in all.
 */
export class DatasetIndexes {
  readonly #store: Pick<AnalysisStore, 'signed'>;
  readonly #maxImages: number;
  readonly #held = new Map<string, Held>();

  constructor(store: Pick<AnalysisStore, 'signed'>, options: { maxImages: number }) {
    this.#store = store;
    this.#maxImages = options.maxImages;
  }

  /** How many images the indexes hold in all. */
  get size(): number {
    let total = 0;
    for (const held of this.#held.values()) total += held.index.size;
    return total;
  }

  /**
   * Adds images this worker has just signed, so the next catch-up need not read them back; a
   * data set not held yet will read them with the rest when first used.
   */
  addSigned(dataset: string, signed: Array<{ entry: IndexEntry; xid: bigint }>): void {
    const held = this.#held.get(dataset);
    if (!held) return;
    for (const { entry, xid } of signed) {
      held.index.add(entry);
      if (xid >= held.from.xid) held.from.known.push({ id: entry.id, xid });
    }
  }

  /** The data set's index with every image signed until now. */
  async current(dataset: string): Promise<CandidateIndex> {
    const held = this.#held.get(dataset) ?? { index: new CandidateIndex(), from: { xid: 0n, known: [] }, usedAt: 0 };
    const cursor: SignedCursor = { xid: held.from.xid, afterId: FIRST_ID, known: held.from.known.map((k) => k.id) };
    let watermark: bigint | undefined;
    const read: Array<{ id: string; xid: bigint }> = [];
    for (;;) {
      const page = await this.#store.signed(dataset, PAGE, cursor);
      // the first page's view is the oldest: what it could not see, the next catch-up reads
      watermark ??= page.xmin;
      for (const row of page.rows) {
        held.index.add(indexEntry(row.id, unpackSignature(row.signature)));
        read.push({ id: row.id, xid: row.xid });
      }
      const last = page.rows.at(-1);
      if (!last || page.rows.length < PAGE) break;
      cursor.afterId = last.id;
    }
    const from = watermark ?? held.from.xid;
    // rows seen already among the transactions the next read takes again
    const known = [...held.from.known, ...read].filter((row) => row.xid >= from);
    held.from = { xid: from, known };
    held.usedAt = performance.now();
    this.#held.set(dataset, held);
    this.#evict(dataset);
    return held.index;
  }

  #evict(keep: string): void {
    while (this.size > this.#maxImages) {
      const oldest = [...this.#held.entries()]
        .filter(([name]) => name !== keep)
        .sort((a, b) => a[1].usedAt - b[1].usedAt)[0];
      if (!oldest) return;
      this.#held.delete(oldest[0]);
    }
  }
}
