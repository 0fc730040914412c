import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
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

const NAME_RULE = 'must be 1 to 64 characters of a-z, 0-9, ".", "_" and "-", other than "." and ".."';
const BY_RULE = 'must be a whole number from 1 to 1000000';

const increment = (name: string, payload?: unknown) =>
  app.inject({
    method: 'POST',
    url: `/counter/${name}/increment`,
    ...(payload === undefined
      ? {}
      : { payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } }),
  });

/** Sends a raw request path over HTTP: app.inject (like fetch) resolves "." and ".." before the app sees them. */
async function rawGet(path: string): Promise<{ statusCode: number; body: string }> {
  if (!app.server.listening) await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const req = request({ host: '127.0.0.1', port, path, method: 'GET' });
  req.end();
  const [res] = await once(req, 'response');
  let body = '';
  for await (const chunk of res) body += chunk;
  return { statusCode: res.statusCode, body };
}

describe('GET /counter/:name', () => {
  test('answers 0 for a counter that was never used', async () => {
    const res = await app.inject('/counter/never-used');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { name: 'never-used', value: 0 });
  });

  test('answers the current value after increments', async () => {
    await increment('read-me');
    await increment('read-me', { by: 4 });
    assert.deepEqual((await app.inject('/counter/read-me')).json(), { name: 'read-me', value: 5 });
  });

  test('accepts every allowed character and 64 characters', async () => {
    for (const name of ['a', 'a.b_c-d', '0', 'x'.repeat(64), '...', 'v1.2']) {
      const res = await app.inject(`/counter/${name}`);
      assert.equal(res.statusCode, 200, `"${name}" should be a valid name`);
    }
  });
});

describe('POST /counter/:name/increment', () => {
  test('adds 1 without a body and answers the new value', async () => {
    const first = await increment('visits');
    assert.equal(first.statusCode, 200);
    assert.deepEqual(first.json(), { name: 'visits', value: 1 });
    assert.deepEqual((await increment('visits')).json(), { name: 'visits', value: 2 });
  });

  test('adds 1 for an empty JSON object', async () => {
    assert.deepEqual((await increment('empty-body', {})).json(), { name: 'empty-body', value: 1 });
  });

  test('adds "by" when the body gives it', async () => {
    assert.deepEqual((await increment('by-n', { by: 5 })).json(), { name: 'by-n', value: 5 });
    assert.deepEqual((await increment('by-n', { by: 1_000_000 })).json(), { name: 'by-n', value: 1_000_005 });
  });

  test('stores the value under the prefix, apart from other counters', async () => {
    await increment('stored', { by: 7 });
    assert.equal(await inspect.get(`${prefix}counter:stored`), '7');
    assert.equal((await app.inject('/counter/stored-not')).json().value, 0);
  });

  test('many concurrent increments add up exactly', async () => {
    const amounts = Array.from({ length: 300 }, (_, i) => (i % 7) + 1);
    const answers = await Promise.all(amounts.map((by) => increment('busy', { by })));
    assert.ok(answers.every((res) => res.statusCode === 200));
    const total = amounts.reduce((a, b) => a + b, 0);
    assert.deepEqual((await app.inject('/counter/busy')).json(), { name: 'busy', value: total });
    const values = new Set(answers.map((res) => res.json().value));
    assert.equal(values.size, amounts.length, 'every increment saw its own new value');
  });

  const badBodies: Array<[string, unknown, string]> = [
    ['by 0', { by: 0 }, `Body field "by" ${BY_RULE} (got 0)`],
    ['by 1000001', { by: 1_000_001 }, `Body field "by" ${BY_RULE} (got 1000001)`],
    ['a negative by', { by: -3 }, `Body field "by" ${BY_RULE} (got -3)`],
    ['by 1.5', { by: 1.5 }, 'Body field "by" must be a whole number from 1 to 1000000 (got 1.5)'],
    ['by as a string', { by: '2' }, `Body field "by" ${BY_RULE} (got "2")`],
    ['by true', { by: true }, `Body field "by" ${BY_RULE} (got true)`],
    ['by null', { by: null }, `Body field "by" ${BY_RULE} (got null)`],
    ['by in an array', { by: [2] }, `Body field "by" ${BY_RULE} (got [2])`],
    ['an unknown field', { by: 1, step: 2 }, 'Body field "step" is not allowed; remove it'],
    ['an array body', [1], 'Body must be a JSON object'],
  ];
  for (const [what, payload, message] of badBodies) {
    test(`answers 400 naming the field for ${what}`, async () => {
      const res = await increment('strict', payload);
      assert.equal(res.statusCode, 400);
      assert.deepEqual(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: 'Bad Request', message });
    });
  }

  test('answers 400 for broken JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/counter/strict/increment',
      headers: { 'content-type': 'application/json' },
      payload: '{"by": 2',
    });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error, 'Bad Request');
    assert.match(res.json().message, /not valid JSON/);
  });

  test('changes nothing when the request is refused', async () => {
    assert.equal(await inspect.exists(`${prefix}counter:strict`), 0);
  });
});

describe('DELETE /counter/:name', () => {
  test('answers 204 for an existing counter, then 404', async () => {
    await increment('doomed', { by: 3 });
    const removed = await app.inject({ method: 'DELETE', url: '/counter/doomed' });
    assert.equal(removed.statusCode, 204);
    assert.equal(removed.body, '');
    assert.equal(await inspect.exists(`${prefix}counter:doomed`), 0);
    const again = await app.inject({ method: 'DELETE', url: '/counter/doomed' });
    assert.equal(again.statusCode, 404);
    assert.deepEqual(again.json(), {
      statusCode: 404,
      code: 'COUNTER_NOT_FOUND',
      error: 'Not Found',
      message: 'Counter "doomed" does not exist',
    });
  });

  test('a deleted counter reads 0 and starts again from 1', async () => {
    await increment('phoenix', { by: 9 });
    await app.inject({ method: 'DELETE', url: '/counter/phoenix' });
    assert.equal((await app.inject('/counter/phoenix')).json().value, 0);
    assert.equal((await increment('phoenix')).json().value, 1);
  });
});

describe('counter names', () => {
  const invalid: Array<[string, string, string]> = [
    ['uppercase', 'Visits', 'Visits'],
    ['65 characters', 'a'.repeat(65), 'a'.repeat(65)],
    ['an encoded slash', 'a%2Fb', 'a/b'],
    ['unicode', '%C3%A9t%C3%A9', 'été'],
    ['a space', 'a%20b', 'a b'],
  ];
  for (const [what, path, shown] of invalid) {
    test(`a name with ${what} is a 400 saying what names may be, on every route`, async () => {
      const quoted = shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
      const message = `Path parameter "name" ${NAME_RULE} (got "${quoted}")`;
      for (const [method, url] of [
        ['GET', `/counter/${path}`],
        ['POST', `/counter/${path}/increment`],
        ['DELETE', `/counter/${path}`],
      ] as const) {
        const res = await app.inject({ method, url });
        assert.equal(res.statusCode, 400, `${method} ${url}`);
        assert.deepEqual(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: 'Bad Request', message });
      }
    });
  }

  test('an empty name is a 400', async () => {
    const res = await app.inject('/counter/');
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().message, `Path parameter "name" ${NAME_RULE} (got "")`);
  });

  test('"." and ".." are not names', async () => {
    const dotted: Array<[string, string]> = [
      ['/counter/..', '..'],
      ['/counter/%2e%2e', '..'],
      ['/counter/.', '.'],
    ];
    for (const [path, name] of dotted) {
      const res = await rawGet(path);
      assert.equal(res.statusCode, 400, path);
      assert.equal(JSON.parse(res.body).message, `Path parameter "name" ${NAME_RULE} (got "${name}")`);
    }
  });
});
