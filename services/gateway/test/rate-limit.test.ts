import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { createRedisServer, type PrivateRedis, redisServerMissing } from '../../../test/helpers/redis-server.ts';
import { GatewayEnv } from '../src/config.ts';
import { createRedis } from '../src/redis.ts';
import { echoUpstream, gateway, listen } from './helpers.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function connectedRedis(url: string): Promise<Redis> {
  const redis = createRedis(loadConfig(GatewayEnv, { REDIS_URL: url, REDIS_COMMAND_TIMEOUT_MS: '200' }));
  const deadline = Date.now() + 5000;
  while (redis.status !== 'ready' && Date.now() < deadline) await sleep(10);
  return redis;
}

/** A GET over a real socket with the given X-Forwarded-For, so the gateway sees the peer address as it is. */
function getWith(base: string, path: string, forwardedFor: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { headers: { 'x-forwarded-for': forwardedFor }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('rate limits per client', () => {
  const prefix = `test:${randomUUID()}:`;
  const plain = new Redis('redis://127.0.0.1:6379');
  let upstream: FastifyInstance;
  let upstreamUrl: string;
  let seenUpstream = 0;
  const apps: FastifyInstance[] = [];

  /** A gateway sharing the test's Redis prefix, as a replica would. */
  async function limited(env: Record<string, string>) {
    const redis = await connectedRedis('redis://127.0.0.1:6379');
    const app = gateway(
      // an hour-long window, so no test straddles the moment a window ends
      {
        COUNTER_URL: upstreamUrl,
        RATE_LIMIT_KEY_PREFIX: prefix,
        RATE_LIMIT_SYNC_MS: '20',
        RATE_LIMIT_WINDOW_MS: '3600000',
        ...env,
      },
      { redis },
    );
    apps.push(app);
    await app.ready();
    return app;
  }

  before(async () => {
    upstream = echoUpstream();
    upstream.addHook('onRequest', async () => {
      seenUpstream++;
    });
    upstreamUrl = await listen(upstream);
  });

  after(async () => {
    for (const app of apps) await app.close();
    await upstream.close();
    const keys = await plain.keys(`${prefix}*`);
    if (keys.length > 0) await plain.del(...keys);
    await plain.quit();
  });

  test('answers carry the IETF RateLimit and RateLimit-Policy headers', async () => {
    const app = await limited({ RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_MS: '60000' });
    const res = await app.inject({ url: '/counter/echo/a', remoteAddress: '198.51.100.1' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['ratelimit-policy'], '"per-client";q=5;w=60');
    assert.match(String(res.headers.ratelimit), /^"per-client";r=4;t=([1-9]|[1-5]\d|60)$/);
  });

  test('past the limit it answers 429 JSON with Retry-After, without asking the upstream', async () => {
    const app = await limited({ RATE_LIMIT_MAX: '3' });
    const client = '198.51.100.2';
    for (let i = 0; i < 3; i++) {
      assert.equal((await app.inject({ url: '/counter/echo/b', remoteAddress: client })).statusCode, 200);
    }
    const seen = seenUpstream;
    const res = await app.inject({ url: '/counter/echo/b', remoteAddress: client });
    assert.equal(res.statusCode, 429);
    assert.equal(seenUpstream, seen, 'the upstream never saw it');
    assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    const retryAfter = Number(res.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 3600, `Retry-After ${res.headers['retry-after']}`);
    assert.match(String(res.headers.ratelimit), /^"per-client";r=0;t=\d+$/);
    const body = res.json();
    assert.equal(body.code, 'RATE_LIMITED');
    assert.equal(body.error, 'Too Many Requests');
    assert.match(body.message, /^Too many requests from "198\.51\.100\.2": the limit is 3 per 3600 s; retry in \d+ s$/);
    // another client is not affected
    assert.equal((await app.inject({ url: '/counter/echo/b', remoteAddress: '198.51.100.3' })).statusCode, 200);
  });

  test('writes and refused writes count too, so tokens cannot be guessed at full speed', async () => {
    const app = await limited({ RATE_LIMIT_MAX: '2' });
    const client = '198.51.100.4';
    const guess = { authorization: 'Bearer wrong-guess-0123456789' };
    for (let i = 0; i < 2; i++) {
      const res = await app.inject({ method: 'POST', url: '/counter/echo/c', headers: guess, remoteAddress: client });
      assert.equal(res.statusCode, 403);
    }
    const res = await app.inject({ method: 'POST', url: '/counter/echo/c', headers: guess, remoteAddress: client });
    assert.equal(res.statusCode, 429);
  });

  test('the limit holds across gateway replicas sharing Redis', async () => {
    const one = await limited({ RATE_LIMIT_MAX: '10' });
    const two = await limited({ RATE_LIMIT_MAX: '10' });
    const client = '198.51.100.5';
    const get = (app: FastifyInstance) => app.inject({ url: '/counter/echo/d', remoteAddress: client });
    for (let i = 0; i < 6; i++) assert.equal((await get(one)).statusCode, 200);
    await sleep(100);
    assert.equal((await get(two)).statusCode, 200);
    await sleep(100); // two's first sync tells it about one's six
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await get(two)).statusCode);
    assert.deepEqual(codes, [200, 200, 200, 429, 429], '10 in all, whichever replica answered');
  });

  test('health, readiness and metrics are not rate-limited', async () => {
    const app = await limited({ RATE_LIMIT_MAX: '1' });
    for (let i = 0; i < 5; i++) {
      const res = await app.inject({ url: '/healthz', remoteAddress: '198.51.100.6' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers.ratelimit, undefined);
    }
  });

  test('a client cannot dodge the limit by sending X-Forwarded-For when no proxy is trusted', async () => {
    const app = await limited({ RATE_LIMIT_MAX: '3' });
    const base = await listen(app);
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push(await getWith(base, '/counter/echo/e', `203.0.113.${i + 1}`));
    assert.deepEqual(codes, [200, 200, 200, 429, 429, 429]);
  });

  test('behind a trusted proxy each client gets its own budget, and a made-up address in front does not help', async () => {
    const app = await limited({ RATE_LIMIT_MAX: '2', TRUSTED_PROXIES: '127.0.0.1' });
    const base = await listen(app);
    // the proxy appends the address it saw; whatever the client wrote before it is ignored
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push(await getWith(base, '/counter/echo/f', `10.9.9.${i}, 192.0.2.10`));
    assert.deepEqual(codes, [200, 200, 429, 429]);
    assert.equal(await getWith(base, '/counter/echo/f', '192.0.2.11'), 200, 'another client behind the proxy');
  });

  test('RATE_LIMIT_ENABLED=false turns the limit and its headers off', async () => {
    const app = gateway({ COUNTER_URL: upstreamUrl, RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_MAX: '1' });
    apps.push(app);
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ url: '/counter/echo/g' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers.ratelimit, undefined);
    }
  });
});

describe('rate limits when Redis is down', { skip: redisServerMissing }, () => {
  let server: PrivateRedis;
  let upstream: FastifyInstance;
  let app: FastifyInstance;
  let redis: Redis;

  before(async () => {
    server = await createRedisServer();
    await server.start();
    upstream = echoUpstream();
    const upstreamUrl = await listen(upstream);
    redis = await connectedRedis(server.url);
    app = gateway(
      {
        COUNTER_URL: upstreamUrl,
        RATE_LIMIT_MAX: '20',
        RATE_LIMIT_SYNC_MS: '20',
        RATE_LIMIT_WINDOW_MS: '3600000',
        RATE_LIMIT_KEY_PREFIX: 'rl:',
      },
      { redis },
    );
    await app.ready();
  });

  after(async () => {
    await app.close();
    await upstream.close();
    await server.close();
  });

  test('requests still pass, never a 5xx, limited by this gateway alone, and shared counting resumes', async () => {
    const client = '198.51.100.20';
    const get = () => app.inject({ url: '/counter/echo/h', remoteAddress: client });
    for (let i = 0; i < 5; i++) assert.equal((await get()).statusCode, 200);
    await server.stop();
    const during: number[] = [];
    const started = performance.now();
    for (let i = 0; i < 20; i++) during.push((await get()).statusCode);
    assert.ok(performance.now() - started < 2000, 'no request waited on Redis');
    assert.deepEqual(during.slice(0, 15), Array(15).fill(200));
    assert.deepEqual(during.slice(15), Array(5).fill(429), 'the local count still limits');
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);

    await server.start();
    const check = new Redis(server.url);
    try {
      const window = Math.floor(Date.now() / 3_600_000);
      const deadline = Date.now() + 8000;
      let stored: string | null = null;
      while (stored === null && Date.now() < deadline) {
        await app.inject({ url: '/counter/echo/h', remoteAddress: '198.51.100.21' });
        stored = await check.get(`rl:${window}:198.51.100.21`);
        await sleep(50);
      }
      assert.ok(stored !== null, 'counts reach Redis again after it returns');
    } finally {
      check.disconnect();
    }
  });
});
