import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '@berth/service-kit';
import { Redis } from 'ioredis';
import { createRedisServer, type PrivateRedis, redisServerMissing } from '../../../test/helpers/redis-server.ts';
import { GatewayEnv } from '../src/config.ts';
import { BatchedRedisStore } from '../src/rate-limit-store.ts';
import { createRedis } from '../src/redis.ts';

// an hour, so no test straddles the moment a window ends
const WINDOW = 3_600_000;

/** The gateway's own Redis client, connected. */
async function redisFor(url: string, commandTimeoutMs = 300) {
  const redis = createRedis(
    loadConfig(GatewayEnv, { REDIS_URL: url, REDIS_COMMAND_TIMEOUT_MS: String(commandTimeoutMs) }),
  );
  redis.on('error', () => {});
  await until(() => redis.status === 'ready');
  return redis;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('batched Redis store for rate limits', () => {
  const prefix = `test:${randomUUID()}:rl:`;
  const plain = new Redis('redis://127.0.0.1:6379');
  const clients: Redis[] = [];
  const stores: BatchedRedisStore[] = [];

  async function store(options: Partial<ConstructorParameters<typeof BatchedRedisStore>[0]> = {}) {
    const redis = await redisFor('redis://127.0.0.1:6379');
    clients.push(redis);
    const made = new BatchedRedisStore({ redis, prefix, windowMs: WINDOW, syncMs: 20, ...options });
    stores.push(made);
    return made;
  }

  after(async () => {
    for (const s of stores) await s.close();
    for (const c of clients) c.disconnect();
    const keys = await plain.keys(`${prefix}*`);
    if (keys.length > 0) await plain.del(...keys);
    await plain.quit();
  });

  test('counts each hit at once, per client, and reports the time left in a window aligned to the clock', async () => {
    const s = await store();
    const now = 10 * WINDOW + 15_000;
    assert.deepEqual(s.hit('a', now), { current: 1, ttl: WINDOW - 15_000 });
    assert.deepEqual(s.hit('a', now + 1000), { current: 2, ttl: WINDOW - 16_000 });
    assert.deepEqual(s.hit('b', now + 1000), { current: 1, ttl: WINDOW - 16_000 });
    // the next window starts from nothing
    assert.deepEqual(s.hit('a', 11 * WINDOW), { current: 1, ttl: WINDOW });
  });

  test('sends the counts to Redis in one batch with an expiry just past the window', async () => {
    const s = await store();
    const client = `client-${randomUUID()}`;
    for (let i = 0; i < 7; i++) s.hit(client);
    await s.flush();
    const window = Math.floor(Date.now() / WINDOW);
    const key = `${prefix}${window}:${client}`;
    assert.equal(await plain.get(key), '7');
    const ttl = await plain.pttl(key);
    assert.ok(ttl > 0 && ttl <= WINDOW + 1000, `ttl ${ttl}`);
  });

  test('two gateways sharing Redis count a client together, each learning the total when it syncs', async () => {
    const one = await store();
    const two = await store();
    const client = `client-${randomUUID()}`;
    for (let i = 0; i < 5; i++) one.hit(client);
    for (let i = 0; i < 3; i++) two.hit(client);
    await one.flush();
    await two.flush();
    assert.equal(two.hit(client).current, 9, 'two synced last and knows all 8');
    await two.flush();
    // one has not heard of two's hits yet: between syncs a replica counts on what it knew
    assert.equal(one.hit(client).current, 6);
    await one.flush();
    assert.equal(one.hit(client).current, 11);
  });

  test('works without Redis, counting for this process alone', () => {
    const local = new BatchedRedisStore({ prefix, windowMs: WINDOW, syncMs: 20 });
    stores.push(local);
    for (let i = 0; i < 4; i++) local.hit('x');
    assert.equal(local.hit('x').current, 5);
  });

  test('fits @fastify/rate-limit’s store interface', async () => {
    const s = await store();
    let seen: { current: number; ttl: number } | undefined;
    s.incr('y', (err, result) => {
      assert.equal(err, null);
      seen = result;
    });
    assert.equal(seen?.current, 1);
    assert.equal(s.child(), s);
  });
});

describe('batched Redis store when Redis goes away', { skip: redisServerMissing }, () => {
  let server: PrivateRedis;
  let redis: Redis;
  let s: BatchedRedisStore;
  const events: string[] = [];

  before(async () => {
    server = await createRedisServer();
    await server.start();
    redis = await redisFor(server.url, 200);
    s = new BatchedRedisStore({
      redis,
      prefix: 'rl:',
      windowMs: WINDOW,
      syncMs: 20,
      onUnavailable: (err) => events.push(`down: ${err.message}`),
      onAvailable: () => events.push('up'),
    });
  });

  after(async () => {
    await s.close();
    redis.disconnect();
    await server.close();
  });

  test('keeps counting locally while Redis is stopped, says so once, and sends the hits when it is back', async () => {
    for (let i = 0; i < 3; i++) s.hit('c');
    await s.flush();
    await server.stop();
    const started = performance.now();
    for (let i = 0; i < 4; i++) assert.equal(s.hit('c').current, 4 + i, 'counts go on');
    assert.ok(performance.now() - started < 50, 'a hit never waits for Redis');
    await until(() => events.some((e) => e.startsWith('down')));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(events.filter((e) => e.startsWith('down')).length, 1, 'the outage is reported once');
    // a restarted Redis without persistence has lost the first 3; the 4 counted meanwhile arrive
    await server.start();
    await until(() => events.includes('up'), 8000);
    const window = Math.floor(Date.now() / WINDOW);
    const check = new Redis(server.url);
    try {
      assert.equal(await check.get(`rl:${window}:c`), '4');
    } finally {
      check.disconnect();
    }
  });

  test('keeps counting when Redis hangs, each batch bounded by the command timeout', async () => {
    const before = s.hit('d').current;
    server.pause();
    try {
      const started = performance.now();
      for (let i = 0; i < 100; i++) s.hit('d');
      assert.ok(performance.now() - started < 50);
      assert.equal(s.hit('d').current, before + 101);
      await s.flush();
    } finally {
      server.resume();
    }
  });
});
