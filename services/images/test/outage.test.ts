import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { prepareDatabase } from '../src/setup.ts';
import { tempDir, testApp } from './helpers/app.ts';
import { type PrivateServer, privateServer } from './helpers/cluster.ts';
import { multipart, numberedPng } from './helpers/images.ts';

// A private PostgreSQL server, so stopping it disturbs nobody else
let server: PrivateServer;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;

before(async () => {
  server = await privateServer();
  await prepareDatabase(server.url('images'));
  dir = await tempDir();
  ctx = await testApp(server.url('images'), dir.path, { connectTimeoutMs: 1000, statementTimeoutMs: 500 });
});

after(async () => {
  await ctx?.app.close();
  await server?.destroy();
  await dir?.remove();
});

async function timed(method: 'GET' | 'POST', url: string, extra: object = {}) {
  const started = performance.now();
  const response = await ctx.app.inject({ method, url, ...extra });
  return { response, ms: performance.now() - started };
}

async function upload(n: number) {
  const form = multipart([{ name: 'file', value: await numberedPng(n), filename: 'x.png' }]);
  return timed('POST', '/images', form);
}

test('PostgreSQL going away turns requests into fast 503s with nothing left behind, and the service recovers by itself', async () => {
  const stored = (await upload(1)).response.json();
  assert.ok(stored.id);

  await server.stop();
  for (const url of ['/images', `/images/${stored.id}`, `/images/${stored.id}/file`, '/images/datasets']) {
    const { response, ms } = await timed('GET', url);
    assert.equal(response.statusCode, 503, `${url}: ${response.body}`);
    assert.equal(response.json().message, 'PostgreSQL is unavailable right now; retry in a few seconds');
    assert.ok(ms < 1500, `${url} answered in ${Math.round(ms)} ms`);
  }
  const { response: refused, ms } = await upload(2);
  assert.equal(refused.statusCode, 503);
  assert.ok(ms < 1500);
  assert.deepEqual(await readdir(join(dir.path, '.tmp')), [], 'the staged upload was removed');
  const ready = await timed('GET', '/readyz');
  assert.equal(ready.response.statusCode, 503);

  await server.start();
  const deadline = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await timed('GET', `/images/${stored.id}`)).response.statusCode;
    if (status === 200) break;
    await sleep(200);
  }
  assert.equal(status, 200, 'answers again without a restart');
  assert.equal((await upload(2)).response.statusCode, 201);
});
