// The counter against a redis-server of its own that the tests stop, freeze and start again: it must
// answer 503 fast while Redis is away and recover by itself, without a new app or client.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import {
  createRedisServer,
  type PrivateRedis,
  redisServerMissing,
  startRedisServer,
} from '../../../test/helpers/redis-server.ts';
import { counterApp, eventually, testPrefix, timed, whenReady } from './helpers.ts';

/** The behaviour contract for a dependency that is down: an answer within this, never a hang. */
const ANSWER_WITHIN_MS = 2000;
const RECOVER_WITHIN_MS = 10_000;
const HELLO = /^Hello World! I have been seen \d+ times\.\n$/;

function assertRedisUnavailable(res: { statusCode: number; headers: Record<string, unknown>; json: () => unknown }) {
  assert.equal(res.statusCode, 503);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json() as Record<string, unknown>;
  assert.equal(body.statusCode, 503);
  assert.equal(body.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(body.error, 'Service Unavailable');
  assert.match(String(body.message), /Redis/);
}

const routes = [
  { method: 'GET', url: '/' },
  { method: 'GET', url: '/counter/outage' },
  { method: 'POST', url: '/counter/outage/increment' },
  { method: 'DELETE', url: '/counter/outage' },
] as const;

describe('when Redis stops', { skip: redisServerMissing }, () => {
  let server: PrivateRedis;
  let app: FastifyInstance;
  let redis: Redis;

  before(async () => {
    server = await startRedisServer();
    ({ app, redis } = counterApp({ REDIS_URL: server.url, REDIS_KEY_PREFIX: testPrefix() }));
    await whenReady(redis);
    assert.equal((await app.inject('/')).statusCode, 200);
    await server.stop();
    await eventually(async () => redis.status !== 'ready', ANSWER_WITHIN_MS, 'the client noticing Redis went away');
  });

  after(async () => {
    await app?.close();
    await server?.close();
  });

  for (const { method, url } of routes) {
    test(`${method} ${url} answers 503 JSON naming Redis within 2 s`, async () => {
      const { result, ms } = await timed(() => app.inject({ method, url }));
      assertRedisUnavailable(result);
      assert.equal(result.headers['retry-after'], '1');
      assert.ok(ms < ANSWER_WITHIN_MS, `answered after ${Math.round(ms)} ms`);
    });
  }

  test('a bad request still answers 400, not 503', async () => {
    const res = await app.inject('/counter/NOT-VALID');
    assert.equal(res.statusCode, 400);
  });

  test('/readyz answers 503 naming redis', async () => {
    const { result, ms } = await timed(() => app.inject('/readyz'));
    assert.equal(result.statusCode, 503);
    const body = result.json();
    assert.equal(body.message, 'Not ready: redis is down');
    assert.equal(body.checks.redis.status, 'down');
    assert.ok(ms < ANSWER_WITHIN_MS, `answered after ${Math.round(ms)} ms`);
  });

  test('/healthz still answers 200', async () => {
    const res = await app.inject('/healthz');
    assert.equal(res.statusCode, 200);
  });

  test('200 parallel requests all settle within 2 s', async () => {
    const { result, ms } = await timed(() =>
      Promise.all(
        Array.from({ length: 200 }, (_, i) => app.inject(routes[i % routes.length] as (typeof routes)[number])),
      ),
    );
    for (const res of result) assertRedisUnavailable(res);
    assert.ok(ms < ANSWER_WITHIN_MS, `all answered after ${Math.round(ms)} ms`);
  });

  test('recovers by itself when redis-server starts again on the same port', async () => {
    const port = server.port;
    await server.start();
    assert.equal(server.port, port);
    await eventually(async () => (await app.inject('/')).statusCode === 200, RECOVER_WITHIN_MS, 'GET / answering 200');
    const res = await app.inject('/');
    assert.match(res.body, HELLO);
    assert.equal((await app.inject('/readyz')).statusCode, 200);
    const named = await app.inject({ method: 'POST', url: '/counter/outage/increment' });
    assert.equal(named.statusCode, 200);
  });
});

describe('when Redis hangs', { skip: redisServerMissing }, () => {
  let server: PrivateRedis;
  let app: FastifyInstance;
  let redis: Redis;

  before(async () => {
    server = await startRedisServer();
    ({ app, redis } = counterApp({ REDIS_URL: server.url, REDIS_KEY_PREFIX: testPrefix() }));
    await whenReady(redis);
    server.pause();
  });

  after(async () => {
    server?.resume();
    await app?.close();
    await server?.close();
  });

  test('GET / answers 503 within 2 s instead of waiting on it', async () => {
    const { result, ms } = await timed(() => app.inject('/'));
    assertRedisUnavailable(result);
    assert.ok(ms < ANSWER_WITHIN_MS, `answered after ${Math.round(ms)} ms`);
  });

  test('parallel requests to every route all settle within 2 s', async () => {
    const { result, ms } = await timed(() =>
      Promise.all(
        Array.from({ length: 100 }, (_, i) => app.inject(routes[i % routes.length] as (typeof routes)[number])),
      ),
    );
    for (const res of result) assertRedisUnavailable(res);
    assert.ok(ms < ANSWER_WITHIN_MS, `all answered after ${Math.round(ms)} ms`);
  });

  test('/readyz answers 503 naming redis within 2 s', async () => {
    const { result, ms } = await timed(() => app.inject('/readyz'));
    assert.equal(result.statusCode, 503);
    assert.equal(result.json().message, 'Not ready: redis is down');
    assert.ok(ms < ANSWER_WITHIN_MS, `answered after ${Math.round(ms)} ms`);
  });

  test('answers again once Redis resumes', async () => {
    server.resume();
    await eventually(async () => (await app.inject('/')).statusCode === 200, RECOVER_WITHIN_MS, 'GET / answering 200');
  });
});

describe('when the counter starts before Redis', { skip: redisServerMissing }, () => {
  let server: PrivateRedis;
  let app: FastifyInstance;

  before(async () => {
    server = await createRedisServer();
    ({ app } = counterApp({ REDIS_URL: server.url, REDIS_KEY_PREFIX: testPrefix() }));
    await app.ready();
  });

  after(async () => {
    await app?.close();
    await server?.close();
  });

  test('it is alive but not ready, and GET / answers 503 within 2 s', async () => {
    assert.equal((await app.inject('/healthz')).statusCode, 200);
    const ready = await app.inject('/readyz');
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.json().message, 'Not ready: redis is down');
    const { result, ms } = await timed(() => app.inject('/'));
    assertRedisUnavailable(result);
    assert.ok(ms < ANSWER_WITHIN_MS, `answered after ${Math.round(ms)} ms`);
  });

  test('it becomes ready by itself once Redis appears', async () => {
    await server.start();
    await eventually(async () => (await app.inject('/readyz')).statusCode === 200, RECOVER_WITHIN_MS, '/readyz 200');
    const res = await app.inject('/');
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'Hello World! I have been seen 1 times.\n');
  });
});
