import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BUCKET_CAP,
  CandidateIndex,
  FINALISTS,
  type IndexEntry,
  PRESCORE_FLOOR,
  prescoreVector,
} from '../src/analysis/candidates.ts';

/** A seeded generator, so the index sees the same entries every run. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
}

/** An entry with 16 random keys (under 2^20, as real ones) and the vectors of two random views. */
function entry(id: string, random: () => number): IndexEntry {
  const vector = () => prescoreVector(Uint8Array.from({ length: 32 * 32 }, () => Math.floor(random() * 256)));
  return {
    id,
    keys: Array.from({ length: 16 }, (_, band) => (band << 16) | Math.floor(random() * 65536)),
    content: vector(),
    frame: vector(),
  };
}

test('an image finds the images sharing its keys whose vectors match, best first, and never itself', () => {
  const random = seeded(7);
  const index = new CandidateIndex();
  const entries = Array.from({ length: 5000 }, (_, i) => entry(`image-${i}`, random));
  for (const e of entries) index.add(e);
  assert.equal(index.size, 5000);
  // adding one again changes nothing
  index.add(entries[0] as IndexEntry);
  assert.equal(index.size, 5000);

  const original = entries[1234] as IndexEntry;
  // a copy: half the keys of the original, the same vectors
  const copy: IndexEntry = { ...original, id: 'copy', keys: original.keys.map((k, i) => (i % 2 ? k : k ^ 1)) };
  const found = index.finalists(copy);
  assert.equal(found[0]?.id, original.id);
  assert.ok((found[0]?.prescore as number) > 0.99, `pre-score ${found[0]?.prescore}`);
  assert.ok(found.length <= FINALISTS);
  assert.ok(found.every((f) => f.prescore >= PRESCORE_FLOOR));

  // the original itself, as a probe, does not find itself
  assert.ok(!index.finalists(original).some((f) => f.id === original.id));
  // an image sharing no key finds nothing
  assert.deepEqual(index.finalists({ ...original, id: 'stranger', keys: original.keys.map((k) => k ^ 0x5a5a) }), []);
});

test('a key shared by more than BUCKET_CAP images is not followed', () => {
  const random = seeded(11);
  const index = new CandidateIndex();
  const common = 0x30000 | 42;
  const base = entry('base', random);
  // BUCKET_CAP + 1 images with the same vectors as the probe, all sharing one key and no other
  for (let i = 0; i <= BUCKET_CAP; i++) {
    const e = entry(`crowd-${i}`, random);
    index.add({ ...e, keys: [common, ...e.keys.slice(1)], content: base.content, frame: base.frame });
  }
  const probe = { ...base, keys: [common, ...base.keys.slice(1)] };
  assert.deepEqual(index.finalists(probe), []);
  // one image fewer in the bucket, and it is followed
  const smaller = new CandidateIndex();
  for (let i = 0; i < BUCKET_CAP; i++) {
    const e = entry(`crowd-${i}`, random);
    smaller.add({ ...e, keys: [common, ...e.keys.slice(1)], content: base.content, frame: base.frame });
  }
  assert.equal(smaller.finalists(probe).length, FINALISTS);
});
