import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { advisory, createService, type ReadinessCheck, runCheck } from '../src/index.ts';

const up: ReadinessCheck = async () => 'PONG';
const refused: ReadinessCheck = async () => {
  throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
};
const hangs: ReadinessCheck = () => new Promise(() => {});

function buildDemo(readiness: Record<string, ReadinessCheck>, readinessTimeoutMs?: number) {
  return createService({ name: 'demo', logLevel: 'silent', readiness, readinessTimeoutMs });
}

describe('GET /healthz', () => {
  test('answers 200 without touching dependencies, even when they are down', async (t) => {
    let calls = 0;
    const app = buildDemo({
      db: async () => {
        calls++;
        throw new Error('down');
      },
    });
    t.after(() => app.close());
    const res = await app.inject('/healthz');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
    assert.equal(calls, 0);
  });
});

describe('GET /readyz', () => {
  test('an advisory check that is down degrades the answer but keeps it 200; a required one still fails it', async (t) => {
    const app = buildDemo({ db: up, nats: advisory(refused) });
    t.after(() => app.close());
    const res = await app.inject('/readyz');
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().status, 'degraded');
    assert.equal(res.json().checks.nats.status, 'down');
    const both = buildDemo({ db: refused, nats: advisory(refused) });
    t.after(() => both.close());
    const failed = await both.inject('/readyz');
    assert.equal(failed.statusCode, 503);
    assert.match(failed.json().message, /^Not ready: db is down$/);
  });

  test('answers 200 with every check up', async (t) => {
    const app = buildDemo({ db: up, cache: up });
    t.after(() => app.close());
    const res = await app.inject('/readyz');
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.status, 'ready');
    assert.equal(body.checks.db.status, 'up');
    assert.equal(body.checks.cache.status, 'up');
    assert.equal(typeof body.checks.db.latencyMs, 'number');
  });

  test('answers 200 for a service with no dependencies', async (t) => {
    const app = buildDemo({});
    t.after(() => app.close());
    const res = await app.inject('/readyz');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ready', checks: {} });
  });

  test('answers 503 naming the failing check and its error', async (t) => {
    const app = buildDemo({ db: up, cache: refused });
    t.after(() => app.close());
    const res = await app.inject('/readyz');
    assert.equal(res.statusCode, 503);
    const body = res.json();
    assert.equal(body.statusCode, 503);
    assert.equal(body.code, 'NOT_READY');
    assert.equal(body.error, 'Service Unavailable');
    assert.equal(body.message, 'Not ready: cache is down');
    assert.equal(body.checks.db.status, 'up');
    assert.equal(body.checks.cache.status, 'down');
    assert.equal(body.checks.cache.error, 'connect ECONNREFUSED 127.0.0.1:6379');
  });

  test('names every failing check', async (t) => {
    const app = buildDemo({ db: refused, cache: refused, queue: up });
    t.after(() => app.close());
    const res = await app.inject('/readyz');
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().message, 'Not ready: db, cache are down');
  });

  test('a hanging check is answered as down within the timeout', async (t) => {
    const app = buildDemo({ db: up, nats: hangs }, 200);
    t.after(() => app.close());
    const started = performance.now();
    const res = await app.inject('/readyz');
    const elapsed = performance.now() - started;
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().message, 'Not ready: nats is down');
    assert.equal(res.json().checks.nats.error, 'no answer within 200 ms');
    assert.ok(elapsed >= 190 && elapsed < 1000, `answered after ${Math.round(elapsed)} ms`);
  });

  test('checks run in parallel, so two hanging checks still take one timeout', async (t) => {
    const app = buildDemo({ db: hangs, nats: hangs }, 300);
    t.after(() => app.close());
    const started = performance.now();
    const res = await app.inject('/readyz');
    const elapsed = performance.now() - started;
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().message, 'Not ready: db, nats are down');
    assert.ok(elapsed < 600, `answered after ${Math.round(elapsed)} ms`);
  });

  test('a check that recovers makes the service ready again', async (t) => {
    let healthy = false;
    const app = buildDemo({
      db: async () => {
        if (!healthy) throw new Error('starting');
      },
    });
    t.after(() => app.close());
    assert.equal((await app.inject('/readyz')).statusCode, 503);
    healthy = true;
    assert.equal((await app.inject('/readyz')).statusCode, 200);
  });
});

describe('runCheck', () => {
  test('reports the error a failing check rejects with', async () => {
    const result = await runCheck(() => Promise.reject(new Error('nope')), 100);
    assert.equal(result.status, 'down');
    assert.equal(result.error, 'nope');
  });

  test('does not keep the process waiting on its timer once the check answers', async () => {
    // A leaked 60 s timer would keep this test file from exiting; node:test would then time out.
    const result = await runCheck(up, 60_000);
    assert.equal(result.status, 'up');
  });
});
