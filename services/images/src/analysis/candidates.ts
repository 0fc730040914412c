import { SIDE, type Signature, signatureKeys } from './signature.ts';
import { detailOf } from './verify.ts';

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
  const full = detailOf(view);
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

/** Images whose vectors share one block of memory: 4 MiB, so growing never copies or overshoots much. */
const BLOCK = 8192;

/** The dot product of vector `a` with the one at `offset` in `arena`. */
function dotAt(a: Int8Array, arena: Int8Array, offset: number): number {
  let sum = 0;
  for (let i = 0; i < VECTOR; i++) sum += (a[i] as number) * (arena[offset + i] as number);
  return sum;
}

/** Bucket nodes per block of the node arrays: 2^NODE_BITS. */
const NODE_BITS = 16;
const NODE_MASK = (1 << NODE_BITS) - 1;

/**
 * The buckets' heads: an open-addressing hash table from key (under 2^20) to the bucket's last node
 * and its size, in typed arrays that double when half full; a data set pays for the keys it has.
 */
class Heads {
  #keys = new Int32Array(1024).fill(-1);
  #nodes = new Int32Array(1024);
  #sizes = new Uint32Array(1024);
  /** 32 less the table's size in bits: the product's top bits pick the slot. */
  #shift = 22;
  #used = 0;

  /** Where key is, or the empty slot it would take. */
  #slot(key: number): number {
    const mask = this.#keys.length - 1;
    // Fibonacci hashing: the top bits of the product depend on every bit of the key
    for (let slot = Math.imul(key, 0x9e3779b1) >>> this.#shift; ; slot = (slot + 1) & mask) {
      const found = this.#keys[slot] as number;
      if (found === key || found === -1) return slot;
    }
  }

  /** The bucket's last node (-1 when empty) and its size. */
  get(key: number): { node: number; size: number } {
    const slot = this.#slot(key);
    return this.#keys[slot] === key
      ? { node: this.#nodes[slot] as number, size: this.#sizes[slot] as number }
      : { node: -1, size: 0 };
  }

  /** Makes `node` the bucket's last node, one more in it; returns the node before it (-1: none). */
  push(key: number, node: number): number {
    if (2 * (this.#used + 1) > this.#keys.length) this.#grow();
    const slot = this.#slot(key);
    let previous = -1;
    if (this.#keys[slot] === key) previous = this.#nodes[slot] as number;
    else {
      this.#keys[slot] = key;
      this.#used++;
    }
    this.#nodes[slot] = node;
    this.#sizes[slot] = (this.#sizes[slot] as number) + 1;
    return previous;
  }

  #grow(): void {
    const [keys, nodes, sizes] = [this.#keys, this.#nodes, this.#sizes];
    this.#keys = new Int32Array(keys.length * 2).fill(-1);
    this.#nodes = new Int32Array(keys.length * 2);
    this.#sizes = new Uint32Array(keys.length * 2);
    this.#shift--;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === -1) continue;
      const slot = this.#slot(keys[i] as number);
      this.#keys[slot] = keys[i] as number;
      this.#nodes[slot] = nodes[i] as number;
      this.#sizes[slot] = sizes[i] as number;
    }
  }
}

/**
 * The analysed images of one data set held in memory for finding near-duplicate candidates: the
 * images sharing keys with a probe, the SHORTLIST sharing most, and of those the FINALISTS whose
 * views' detail correlates best with the probe's. Nothing is allocated per image: the buckets are
 * linked lists in typed arrays (a head per key, a node per image and key) and the pre-score
 * vectors live in blocks of BLOCK images; about 700 bytes an image.
 */
export class CandidateIndex {
  readonly #ids: string[] = [];
  readonly #byId = new Map<string, number>();
  readonly #heads = new Heads();
  /**
   * Node n, in block n >> NODE_BITS at 2 * (n & NODE_MASK): the image it stands for, then the node
   * before it in its bucket (-1: none).
   */
  readonly #nodeBlocks: Int32Array[] = [];
  #nodes = 0;
  /** Both vectors of image i, content then frame, at 2 * VECTOR * (i % BLOCK) in block i / BLOCK. */
  readonly #vectors: Int8Array[] = [];
  #counts = new Uint16Array(1024);

  /** How many images it holds. */
  get size(): number {
    return this.#ids.length;
  }

  /** Adds an image; adding one it holds already changes nothing. */
  add(entry: IndexEntry): void {
    if (this.#byId.has(entry.id)) return;
    const at = this.#ids.length;
    this.#ids.push(entry.id);
    this.#byId.set(entry.id, at);
    for (const key of entry.keys) {
      const node = this.#nodes++;
      if ((node & NODE_MASK) === 0) this.#nodeBlocks.push(new Int32Array(2 << NODE_BITS));
      const block = this.#nodeBlocks[node >>> NODE_BITS] as Int32Array;
      block[2 * (node & NODE_MASK)] = at;
      block[2 * (node & NODE_MASK) + 1] = this.#heads.push(key, node);
    }
    if (this.#counts.length < this.#ids.length) {
      const counts = new Uint16Array(this.#counts.length * 2);
      counts.set(this.#counts);
      this.#counts = counts;
    }
    if (at % BLOCK === 0) this.#vectors.push(new Int8Array(2 * VECTOR * BLOCK));
    const block = this.#vectors[Math.floor(at / BLOCK)] as Int8Array;
    block.set(entry.content, 2 * VECTOR * (at % BLOCK));
    block.set(entry.frame, 2 * VECTOR * (at % BLOCK) + VECTOR);
  }

  /** The images to verify against `probe` (an entry, held or not), itself left out, best pre-score first. */
  finalists(probe: IndexEntry): Finalist[] {
    const counts = this.#counts;
    const touched: number[] = [];
    for (const key of probe.keys) {
      const head = this.#heads.get(key);
      if (head.size === 0 || head.size > BUCKET_CAP) continue;
      const blocks = this.#nodeBlocks;
      for (let node = head.node; node >= 0; ) {
        const block = blocks[node >>> NODE_BITS] as Int32Array;
        const slot = 2 * (node & NODE_MASK);
        const at = block[slot] as number;
        if ((counts[at] as number)++ === 0) touched.push(at);
        node = block[slot + 1] as number;
      }
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
    const scored = shortlist.map((at) => {
      const block = this.#vectors[Math.floor(at / BLOCK)] as Int8Array;
      const base = 2 * VECTOR * (at % BLOCK);
      const prescore = Math.max(dotAt(probe.content, block, base), dotAt(probe.frame, block, base + VECTOR));
      return { id: this.#ids[at] as string, prescore: prescore / PRESCORE_UNIT };
    });
    scored.sort((a, b) => b.prescore - a.prescore);
    return scored.slice(0, FINALISTS).filter((finalist) => finalist.prescore >= PRESCORE_FLOOR);
  }
}
