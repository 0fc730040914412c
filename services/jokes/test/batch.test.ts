import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Batcher } from '../src/batch.ts';

/** A run that records what it was asked and answers `${arg}:${i}` once released. */
function recorder() {
  const runs: { arg: string; count: number; release: () => void; failWith: (err: Error) => void }[] = [];
  const run = (arg: string, count: number) =>
    new Promise<string[]>((resolve, reject) => {
      runs.push({
        arg,
        count,
        release: () => resolve(Array.from({ length: count }, (_, i) => `${arg}:${i}`)),
        failWith: reject,
      });
    });
  return { runs, run };
}

describe('Batcher', () => {
  test('calls with the same key in one turn share a run and each gets its own answer, in call order', async () => {
    const { runs, run } = recorder();
    const batcher = new Batcher(run);
    const answers = Promise.all([batcher.add('a', 'a'), batcher.add('a', 'a'), batcher.add('a', 'a')]);
    await nextTurn();
    assert.deepEqual(
      runs.map((r) => [r.arg, r.count]),
      [['a', 3]],
    );
    runs[0]?.release();
    assert.deepEqual(await answers, ['a:0', 'a:1', 'a:2']);
  });

  test('different keys run separately', async () => {
    const { runs, run } = recorder();
    const batcher = new Batcher(run);
    const answers = Promise.all([batcher.add('a', 'a'), batcher.add('b', 'b')]);
    await nextTurn();
    assert.deepEqual(runs.map((r) => r.arg).sort(), ['a', 'b']);
    for (const r of runs) r.release();
    assert.deepEqual(await answers, ['a:0', 'b:0']);
  });

  test('calls beyond the concurrency limit wait, then go together in a run started after they arrived', async () => {
    const { runs, run } = recorder();
    const batcher = new Batcher(run, { concurrency: 1 });
    const first = batcher.add('a', 'a');
    await nextTurn();
    assert.equal(runs.length, 1);
    const later = Promise.all([batcher.add('a', 'a'), batcher.add('a', 'a')]);
    await nextTurn();
    assert.equal(runs.length, 1, 'no second run while the first is under way');
    runs[0]?.release();
    assert.equal(await first, 'a:0');
    assert.deepEqual(
      runs.map((r) => r.count),
      [1, 2],
    );
    runs[1]?.release();
    assert.deepEqual(await later, ['a:0', 'a:1']);
  });

  test('a run answers at most max calls; the rest go in further runs', async () => {
    const { runs, run } = recorder();
    const batcher = new Batcher(run, { max: 2, concurrency: 5 });
    const answers = Promise.all(Array.from({ length: 5 }, () => batcher.add('a', 'a')));
    await nextTurn();
    assert.deepEqual(
      runs.map((r) => r.count),
      [2, 2, 1],
    );
    for (const r of runs) r.release();
    assert.deepEqual(await answers, ['a:0', 'a:1', 'a:0', 'a:1', 'a:0']);
  });

  test('a failed run rejects every call it answers, and the next call runs anew', async () => {
    const { runs, run } = recorder();
    const batcher = new Batcher(run);
    const failed = Promise.allSettled([batcher.add('a', 'a'), batcher.add('a', 'a')]);
    await nextTurn();
    runs[0]?.failWith(new Error('PostgreSQL is unavailable'));
    const outcomes = await failed;
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['rejected', 'rejected'],
    );
    const again = batcher.add('a', 'a');
    await nextTurn();
    assert.equal(runs.length, 2);
    runs[1]?.release();
    assert.equal(await again, 'a:0');
  });
});
