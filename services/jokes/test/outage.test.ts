import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { prepareDatabase } from '../src/setup.ts';
import { body, testApp } from './helpers/app.ts';
import { createCluster, type PrivateCluster } from './helpers/cluster.ts';

// A private PostgreSQL server, so stopping it disturbs nobody else
let cluster: PrivateCluster;
let app: ReturnType<typeof testApp>;

before(async () => {
  cluster = await createCluster();
  await prepareDatabase(cluster.url('ms3_jokes'));
  app = testApp(cluster.url('ms3_jokes'), { connectTimeoutMs: 1000, statementTimeoutMs: 500 });
});

after(async () => {
  await app?.close();
  await cluster?.destroy();
});

async function timed(url: string) {
  const started = performance.now();
  const response = await app.inject({ method: 'GET', url });
  return { response, ms: performance.now() - started };
}

test('PostgreSQL going away turns requests into fast 503s, and the service recovers by itself', async () => {
  assert.equal((await timed('/jokes/random')).response.statusCode, 200);
  assert.equal((await timed('/readyz')).response.statusCode, 200);

  await cluster.stop();
  for (const url of ['/jokes/random', '/jokes?q=lock', '/jokes/1', '/jokes/categories']) {
    const { response, ms } = await timed(url);
    assert.equal(response.statusCode, 503, `${url}: ${response.body}`);
    assert.equal(body(response).message, 'PostgreSQL is unavailable right now; retry in a few seconds');
    assert.equal(response.headers['retry-after'], '1');
    assert.ok(ms < 1500, `${url} answered in ${Math.round(ms)} ms`);
  }
  const post = await app.inject({
    method: 'POST',
    url: '/jokes',
    payload: { joke: 'Written while the lights were out.' },
  });
  assert.equal(post.statusCode, 503);
  const ready = await timed('/readyz');
  assert.equal(ready.response.statusCode, 503);
  assert.match(body(ready.response).message as string, /postgres is down/);
  assert.ok(ready.ms < 1500);

  await cluster.start();
  const deadline = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await timed('/jokes/random')).response.statusCode;
    if (status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(status, 200, 'answers again without a restart');
  assert.equal((await timed('/readyz')).response.statusCode, 200);
});

test('a PostgreSQL that hangs without closing connections is cut off by the timeouts, then recovers', async () => {
  // warm the pool so requests meet open connections to a server that no longer answers
  await Promise.all(Array.from({ length: 5 }, () => timed('/jokes/random')));
  await cluster.freeze();
  try {
    const answers = await Promise.all(['/jokes/random', '/jokes?q=lock', '/jokes/1'].map(timed));
    for (const { response, ms } of answers) {
      assert.equal(response.statusCode, 503, response.body);
      assert.ok(ms < 2500, `answered in ${Math.round(ms)} ms`);
    }
  } finally {
    await cluster.thaw();
  }
  const deadline = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await timed('/jokes/random')).response.statusCode;
    if (status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(status, 200);
});
