import { SIDE, type Signature, signatureKeys } from './signature.ts';
import { detail } from './verify.ts';

/** A key shared by more images than this says little about any of them, and is not followed. */
export const BUCKET_CAP = 1000;
/** Candidates sharing the most keys with an image that are pre-scored. */
export const SHORTLIST = 128;
/** Candidates with the best pre-scores that are verified in full. */
export const FINALISTS = 3;
/**
 * A pre-score (about the detail correlation without shifts) under which a candidate is not worth
 * verifying: 99.6 % of the copies that verify score above it, and only 4 in 10 other finalists.
 */
export const PRESCORE_FLOOR = 0.7;
/** The scale of a pre-score: two unit vectors in 8 bits, each 127 at a quarter. */
const PRESCORE_UNIT = (127 / 0.25) ** 2;

const SMALL = SIDE / 2;

/**
 * A view's detail at half size, zero mean and unit length, in 8 bits: the dot product of two of
 * them is their detail correlation without shifts, a cheap first guess of the full score.
 */
export function prescoreVector(view: Uint8Array): Int8Array {
  const full = detail(view, SIDE);
  const small = new Float32Array(SMALL * SMALL);
  let mean = 0;
  for (let y = 0; y < SMALL; y++) {
    for (let x = 0; x < SMALL; x++) {
      const at = 2 * y * SIDE + 2 * x;
      const sum =
        (full[at] as number) + (full[at + 1] as number) + (full[at + SIDE] as number) + (full[at + SIDE + 1] as number);
      small[y * SMALL + x] = sum;
      mean += sum;
    }
  }
  mean /= small.length;
  let norm = 0;
  for (let i = 0; i < small.length; i++) {
    const centred = (small[i] as number) - mean;
    small[i] = centred;
    norm += centred * centred;
  }
  const out = new Int8Array(small.length);
  if (norm === 0) return out;
  const scale = 127 / Math.sqrt(norm) / 0.25;
  // scaled so a typical value uses the range; the rare larger ones are clipped
  for (let i = 0; i < small.length; i++)
    out[i] = Math.max(-127, Math.min(127, Math.round((small[i] as number) * scale)));
  return out;
}

const VECTOR = SMALL * SMALL;

/** What the index is given of an image: its id, keys and the pre-score vectors of its two views. */
export interface IndexEntry {
  id: string;
  keys: number[];
  content: Int8Array;
  frame: Int8Array;
}

/** A candidate picked for full verification, with its pre-score (about a correlation, from -1 to 1). */
export interface Finalist {
  id: string;
  prescore: number;
}

/** An image's keys as plain numbers (each is under 2^20) and its pre-score vectors. */
export function indexEntry(id: string, signature: Signature): IndexEntry {
  return {
    id,
    keys: signatureKeys(signature).map(Number),
    content: prescoreVector(signature.content),
    frame: prescoreVector(signature.frame),
  };
}

/** The dot product of vector `a` with the one at `offset` in `arena`. */
function dotAt(a: Int8Array, arena: Int8Array, offset: number): number {
  let sum = 0;
  for (let i = 0; i < VECTOR; i++) sum += (a[i] as number) * (arena[offset + i] as number);
  return sum;
}

/**
 * The analysed images of one data set held in memory for finding near-duplicate candidates: the
 * images sharing keys with a probe, the SHORTLIST sharing most, and of those the FINALISTS whose
 * views' detail correlates best with the probe's. The pre-score vectors live in one growing
 * array, so an image costs about 700 bytes and no allocation of its own.
 */
export class CandidateIndex {
  readonly #ids: string[] = [];
  readonly #byId = new Map<string, number>();
  readonly #buckets = new Map<number, number[]>();
  /** Both vectors of image i, content then frame, at 2 * VECTOR * i. */
  #vectors = new Int8Array(2 * VECTOR * 1024);
  #counts = new Uint16Array(1024);

  /** How many images it holds. */
  get size(): number {
    return this.#ids.length;
  }

  /** Whether it holds the image. */
  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /** Adds an image; adding one it holds already changes nothing. */
  add(entry: IndexEntry): void {
    if (this.#byId.has(entry.id)) return;
    const at = this.#ids.length;
    this.#ids.push(entry.id);
    this.#byId.set(entry.id, at);
    for (const key of entry.keys) {
      const bucket = this.#buckets.get(key);
      if (bucket) bucket.push(at);
      else this.#buckets.set(key, [at]);
    }
    if (this.#counts.length < this.#ids.length) {
      const counts = new Uint16Array(this.#counts.length * 2);
      counts.set(this.#counts);
      this.#counts = counts;
      const vectors = new Int8Array(this.#vectors.length * 2);
      vectors.set(this.#vectors);
      this.#vectors = vectors;
    }
    this.#vectors.set(entry.content, 2 * VECTOR * at);
    this.#vectors.set(entry.frame, 2 * VECTOR * at + VECTOR);
  }

  /** The images to verify against `probe` (an entry, held or not), itself left out, best pre-score first. */
  finalists(probe: IndexEntry): Finalist[] {
    const counts = this.#counts;
    const touched: number[] = [];
    for (const key of probe.keys) {
      const bucket = this.#buckets.get(key);
      if (!bucket || bucket.length > BUCKET_CAP) continue;
      for (const at of bucket) if ((counts[at] as number)++ === 0) touched.push(at);
    }
    const self = this.#byId.get(probe.id);
    // the SHORTLIST sharing most keys: grouped by how many they share (at most 16), most first
    const byShared: number[][] = Array.from({ length: probe.keys.length + 1 }, () => []);
    for (const at of touched) {
      if (at !== self) byShared[counts[at] as number]?.push(at);
      counts[at] = 0;
    }
    const shortlist: number[] = [];
    for (let shared = byShared.length - 1; shared > 0 && shortlist.length < SHORTLIST; shared--) {
      for (const at of byShared[shared] as number[]) {
        if (shortlist.length === SHORTLIST) break;
        shortlist.push(at);
      }
    }
    const vectors = this.#vectors;
    const scored = shortlist.map((at) => {
      const base = 2 * VECTOR * at;
      const prescore = Math.max(dotAt(probe.content, vectors, base), dotAt(probe.frame, vectors, base + VECTOR));
      return { id: this.#ids[at] as string, prescore: prescore / PRESCORE_UNIT };
    });
    scored.sort((a, b) => b.prescore - a.prescore);
    return scored.slice(0, FINALISTS).filter((finalist) => finalist.prescore >= PRESCORE_FLOOR);
  }
}
