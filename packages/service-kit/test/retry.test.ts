import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay, connectWithBackoff } from '../src/index.ts';

describe('backoffDelay', () => {
  const top = () => 1;
  const bottom = () => 0;

  test('doubles from the minimum with each attempt', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => backoffDelay(n, 100, 5000, top)),
      [100, 200, 400, 800],
    );
  });

  test('caps at the maximum however many attempts have failed', () => {
    assert.equal(backoffDelay(7, 100, 5000, top), 5000);
    assert.equal(backoffDelay(50, 100, 5000, top), 5000);
    assert.equal(backoffDelay(10_000, 100, 5000, top), 5000);
  });

  test('jitter takes off at most half', () => {
    assert.equal(backoffDelay(3, 100, 5000, bottom), 200);
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(3, 100, 5000);
      assert.ok(delay >= 200 && delay <= 400, `delay ${delay}`);
    }
  });

  test('treats attempt 0 or below like the first attempt', () => {
    assert.equal(backoffDelay(0, 100, 5000, top), 100);
    assert.equal(backoffDelay(-3, 100, 5000, top), 100);
  });
});

describe('connectWithBackoff', () => {
  test('retries until connect succeeds and returns its result', async () => {
    let attempts = 0;
    const retries: number[] = [];
    const client = await connectWithBackoff(
      async () => {
        attempts++;
        if (attempts < 4) throw new Error(`refused ${attempts}`);
        return { connected: true };
      },
      { minMs: 1, maxMs: 5, onRetry: (_err, attempt) => retries.push(attempt) },
    );
    assert.deepEqual(client, { connected: true });
    assert.equal(attempts, 4);
    assert.deepEqual(retries, [1, 2, 3]);
  });

  test('tells onRetry the error and a delay no longer than the maximum', async () => {
    const seen: Array<{ message: string; delay: number }> = [];
    let attempts = 0;
    await connectWithBackoff(
      async () => {
        if (++attempts < 6) throw new Error('ECONNREFUSED');
      },
      { minMs: 2, maxMs: 10, onRetry: (err, _attempt, delay) => seen.push({ message: err.message, delay }) },
    );
    assert.equal(seen.length, 5);
    for (const { message, delay } of seen) {
      assert.equal(message, 'ECONNREFUSED');
      assert.ok(delay >= 2 && delay <= 10, `delay ${delay}`);
    }
  });

  test('stops retrying when its signal aborts', async () => {
    const controller = new AbortController();
    let attempts = 0;
    const connecting = connectWithBackoff(
      async () => {
        attempts++;
        throw new Error('ECONNREFUSED');
      },
      {
        minMs: 1,
        maxMs: 5,
        signal: controller.signal,
        onRetry: (_err, attempt) => attempt === 3 && controller.abort(),
      },
    );
    await assert.rejects(connecting, { name: 'AbortError' });
    const stoppedAt = attempts;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(attempts, stoppedAt, 'no attempt after the abort');
    assert.equal(stoppedAt, 3);
  });

  test('an abort during a long wait ends it at once', async () => {
    const controller = new AbortController();
    const connecting = connectWithBackoff(
      async () => {
        throw new Error('ECONNREFUSED');
      },
      { minMs: 10_000, maxMs: 10_000, signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 20);
    const started = performance.now();
    await assert.rejects(connecting, { name: 'AbortError' });
    assert.ok(performance.now() - started < 1000);
  });
});
