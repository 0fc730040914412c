import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { counterApp, deleteKeys, plainRedis, testPrefix, whenReady } from '../helpers.ts';

const prefix = testPrefix();
const { app, redis } = counterApp({ REDIS_KEY_PREFIX: prefix });
let inspect: Redis;

before(async () => {
  inspect = plainRedis();
  await whenReady(redis);
  await app.ready();
});

after(async () => {
  await app.close();
  await deleteKeys(inspect, prefix);
  await inspect.quit();
});

describe('GET /', () => {
  test('answers the Docker sample text, counting up from 1', async () => {
    const first = await app.inject('/');
    assert.equal(first.statusCode, 200);
    assert.equal(first.body, 'Hello World! I have been seen 1 times.\n');
    const second = await app.inject('/');
    assert.equal(second.body, 'Hello World! I have been seen 2 times.\n');
  });

  test('answers text/plain', async () => {
    const res = await app.inject('/');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  });

  test('keeps the count in the Redis key "hits" under the prefix', async () => {
    const res = await app.inject('/');
    const n = Number(/seen (\d+) times/.exec(res.body)?.[1]);
    assert.equal(await inspect.get(`${prefix}hits`), String(n));
    const next = await app.inject('/');
    assert.equal(next.body, `Hello World! I have been seen ${n + 1} times.\n`);
    assert.equal(await inspect.get(`${prefix}hits`), String(n + 1));
  });

  test('continues from a count already in Redis', async () => {
    await inspect.set(`${prefix}hits`, '41');
    const res = await app.inject('/');
    assert.equal(res.body, 'Hello World! I have been seen 42 times.\n');
  });

  test('counts every one of many concurrent visits', async () => {
    const before = Number(await inspect.get(`${prefix}hits`));
    const answers = await Promise.all(Array.from({ length: 100 }, () => app.inject('/')));
    const counts = answers.map((res) => Number(/seen (\d+) times/.exec(res.body)?.[1]));
    assert.deepEqual(
      counts.toSorted((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => before + i + 1),
      'each visit sees its own number',
    );
    assert.equal(await inspect.get(`${prefix}hits`), String(before + 100));
  });
});
