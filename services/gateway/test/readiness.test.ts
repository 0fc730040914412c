import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import Fastify from 'fastify';
import { closedPort, echoUpstream, gateway, listen } from './helpers.ts';

describe('GET /readyz on the gateway', () => {
  let ready: FastifyInstance;
  let notReady: FastifyInstance;
  let hanging: FastifyInstance;
  const urls: Record<string, string> = {};

  before(async () => {
    ready = echoUpstream();
    urls.ready = await listen(ready);
    notReady = Fastify();
    notReady.get('/readyz', async (_request, reply) =>
      reply.code(503).send({ statusCode: 503, message: 'Not ready: redis is down' }),
    );
    urls.notReady = await listen(notReady);
    hanging = Fastify();
    hanging.get('/readyz', () => new Promise(() => {}));
    urls.hanging = await listen(hanging);
  });

  after(async () => {
    await Promise.all([ready.close(), notReady.close(), hanging.close().catch(() => {})]);
  });

  test('is 200 with each upstream up when all are ready', async () => {
    const app = gateway({ COUNTER_URL: urls.ready as string, JOKES_URL: urls.ready as string });
    const res = await app.inject({ url: '/readyz' });
    await app.close();
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().checks.counter.status, 'up');
    assert.equal(res.json().checks.jokes.status, 'up');
    assert.equal(res.json().checks.images, undefined, 'a service that is not deployed is left out');
  });

  test('is 503 naming the upstream that is not ready, with its own reason', async () => {
    const app = gateway({ COUNTER_URL: urls.notReady as string, JOKES_URL: urls.ready as string });
    const res = await app.inject({ url: '/readyz' });
    await app.close();
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().message, 'Not ready: counter is down');
    assert.match(res.json().checks.counter.error, /503: Not ready: redis is down/);
    assert.equal(res.json().checks.jokes.status, 'up');
  });

  test('answers within its timeout when an upstream hangs or is gone', async () => {
    const gone = await closedPort();
    const app = gateway({
      COUNTER_URL: urls.hanging as string,
      JOKES_URL: `http://127.0.0.1:${gone}`,
      READY_TIMEOUT_MS: '200',
    });
    const started = performance.now();
    const res = await app.inject({ url: '/readyz' });
    const elapsed = performance.now() - started;
    await app.close();
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().message, 'Not ready: counter, jokes are down');
    assert.ok(elapsed < 1500, `took ${elapsed} ms`);
  });

  test('names what failed, never an upstream address', async () => {
    const gone = await closedPort();
    const app = gateway({ COUNTER_URL: `http://127.0.0.1:${gone}`, JOKES_URL: urls.ready as string });
    const res = await app.inject({ url: '/readyz' });
    await app.close();
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().checks.counter.error, 'refused the connection');
    assert.doesNotMatch(res.body, new RegExp(`127\\.0\\.0\\.1|${gone}`));
  });

  test('is rate-limited like forwarded requests', async () => {
    const app = gateway({ COUNTER_URL: urls.ready as string, RATE_LIMIT_MAX: '3' });
    const codes = [];
    for (let i = 0; i < 5; i += 1) codes.push((await app.inject({ url: '/readyz' })).statusCode);
    const refused = await app.inject({ url: '/readyz' });
    await app.close();
    assert.deepEqual(codes, [200, 200, 200, 429, 429]);
    assert.equal(refused.json().code, 'RATE_LIMITED');
  });

  test('a burst of /readyz asks each upstream once at a time', async () => {
    let asked = 0;
    const slow = Fastify();
    slow.get('/readyz', async () => {
      asked += 1;
      await new Promise((resolve) => setTimeout(resolve, 100));
      return { status: 'ready' };
    });
    const app = gateway({ COUNTER_URL: await listen(slow), RATE_LIMIT_MAX: '1000' });
    try {
      const answers = await Promise.all(Array.from({ length: 50 }, () => app.inject({ url: '/readyz' })));
      assert.ok(answers.every((res) => res.statusCode === 200));
      assert.equal(asked, 1);
    } finally {
      await app.close();
      await slow.close();
    }
  });

  test('/healthz answers without asking any upstream', async () => {
    const gone = await closedPort();
    const app = gateway({ COUNTER_URL: `http://127.0.0.1:${gone}` });
    const res = await app.inject({ url: '/healthz' });
    await app.close();
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
  });
});
