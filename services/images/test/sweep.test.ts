import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { lockFilesShared, SWEEP_LOCK } from '../src/storage/locks.ts';
import { sweep } from '../src/storage/sweep.ts';
import { tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { multipart, numberedPng } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;

const GRACE = 60_000;

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  ctx = await testApp(db.url, dir.path);
});

after(async () => {
  await ctx?.app.close();
  await db?.drop();
  await dir?.remove();
});

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function age(path: string, ms = 2 * GRACE) {
  const then = new Date(Date.now() - ms);
  await utimes(path, then, then);
}

/** A file under its content name that no row points at, as a crash between rename and commit leaves it. */
async function orphan(n: number, old = true): Promise<string> {
  const bytes = await numberedPng(n);
  const path = ctx.store.path(sha(bytes));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  if (old) await age(path);
  return sha(bytes);
}

async function upload(n: number, dataset = 'kept') {
  const form = multipart([
    { name: 'dataset', value: dataset },
    { name: 'file', value: await numberedPng(n), filename: 'x.png' },
  ]);
  const response = await ctx.app.inject({ method: 'POST', url: '/images', ...form });
  return response.json() as { id: string; sha256: string };
}

const run = () => sweep(ctx.pool, ctx.store, { graceMs: GRACE });

test('the sweep removes old files no row points at, and keeps referenced and young ones', async () => {
  const kept = await upload(1);
  await age(ctx.store.path(kept.sha256));
  const old = await orphan(2);
  const young = await orphan(3, false);
  const report = await run();
  assert.equal(report.ran, true);
  assert.equal(report.removed, 1);
  assert.equal(await ctx.store.has(old), false);
  assert.equal(await ctx.store.has(young), true, 'inside the grace period');
  assert.equal(await ctx.store.has(kept.sha256), true);
  await age(ctx.store.path(young));
  await run();
  assert.equal(await ctx.store.has(young), false);
});

test('a file whose writer holds the shared lock (row about to commit) is never swept', async () => {
  const pending = await orphan(4);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await lockFilesShared(client, [pending]);
    const report = await run();
    assert.equal(report.ran, true);
    assert.equal(await ctx.store.has(pending), true, 'skipped while locked');
    await client.query('ROLLBACK');
  } finally {
    await client.end();
  }
  await run();
  assert.equal(await ctx.store.has(pending), false, 'taken once the writer gave up');
});

test('old temp files and thumbnails of vanished content are removed; young temp files stay', async () => {
  const oldTemp = join(dir.path, '.tmp', '.tmp-crashed');
  const youngTemp = join(dir.path, '.tmp', '.tmp-receiving');
  await writeFile(oldTemp, 'half');
  await age(oldTemp);
  await writeFile(youngTemp, 'still coming');
  const besideContent = join(dirname(ctx.store.path('ab'.repeat(32))), '.tmp-batch');
  await mkdir(dirname(besideContent), { recursive: true });
  await writeFile(besideContent, 'x');
  await age(besideContent);

  const image = await upload(5, 'thumbs');
  assert.equal((await ctx.app.inject({ method: 'GET', url: `/images/${image.id}/thumbnail?size=64` })).statusCode, 200);
  const thumb = ctx.store.thumbnailPath(image.sha256, 64);
  await age(thumb);
  // the row and the file go, but a thumbnail made in between stays behind
  await db.query('DELETE FROM images WHERE id = $1', [image.id]);
  await rm(ctx.store.path(image.sha256));

  const report = await run();
  assert.equal(report.temps, 2);
  assert.deepEqual(await readdir(join(dir.path, '.tmp')), ['.tmp-receiving']);
  assert.equal(report.thumbnails, 1);
  await assert.rejects(stat(thumb), { code: 'ENOENT' });
});

test('rows whose file is missing are reported with their ids', async () => {
  const image = await upload(6, 'lost');
  await rm(ctx.store.path(image.sha256));
  const report = await run();
  assert.equal(report.missingFiles, 1);
  assert.equal(report.missingRows, 1);
  assert.deepEqual(report.missingExamples, [image.id]);
  await db.query('DELETE FROM images WHERE id = $1', [image.id]);
  assert.equal((await run()).missingRows, 0);
});

test('upload folders of finished import jobs go; those of interrupted ones stay for the retry', async () => {
  const done = '01890000-0000-7000-8000-00000000000d';
  const paused = '01890000-0000-7000-8000-00000000000e';
  for (const [id, status] of [
    [done, 'completed'],
    [paused, 'interrupted'],
  ]) {
    await db.query("INSERT INTO import_jobs (id, dataset, status, files) VALUES ($1, 'jobs', $2, '[]')", [id, status]);
    const folder = ctx.store.importDir(id as string);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, '1-data'), 'x');
    await age(folder);
  }
  const report = await run();
  assert.equal(report.imports, 1);
  assert.deepEqual((await readdir(join(dir.path, '.imports'))).sort(), [paused]);
});

test('only one replica sweeps at a time: the others skip while the lock is held', async () => {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [...SWEEP_LOCK]);
    const report = await run();
    assert.equal(report.ran, false);
  } finally {
    await client.end();
  }
  assert.equal((await run()).ran, true);
});
