// The images service on a volume that fills up: a private tmpfs of a few MiB mounted for this file
// (it needs root, as the test machines and CI run), unmounted after.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { bytesFrom, writeIdx } from './helpers/datasets.ts';
import { multipart } from './helpers/images.ts';

const MiB = 1024 * 1024;
let db: TestDatabase;
let volume: string;
let work: string;
let mounted = false;
let ctx: Awaited<ReturnType<typeof testApp>>;

/** Fills the volume until `leave` bytes are free; returns the filler's path. */
async function fill(leave: number): Promise<string> {
  const { bavail, bsize } = await statfs(volume);
  const path = join(volume, 'filler');
  await writeFile(path, Buffer.alloc(Math.max(0, bavail * bsize - leave)));
  return path;
}

function upload(image: Buffer) {
  const { payload, headers } = multipart([{ name: 'file', value: image, filename: 'noise.png', type: 'image/png' }]);
  return ctx.app.inject({ method: 'POST', url: '/images?dataset=full', payload, headers });
}

/** A PNG of noise, so it does not compress: about `side` × `side` × 3 bytes of file. */
async function noise(side: number, seed: number): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  return sharp(bytesFrom(seed)(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toBuffer();
}

before(async () => {
  db = await createTestDatabase();
  work = await mkdtemp(join(tmpdir(), 'berth-full-src-'));
  volume = await mkdtemp(join(tmpdir(), 'berth-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', volume], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`This test mounts a private tmpfs and needs root: ${(err as Error).message}`);
  }
  mounted = true;
  ctx = await testApp(db.url, volume, {
    MAX_UPLOAD_BYTES: 4 * MiB,
    VOLUME_MIN_FREE_BYTES: MiB,
    IMPORT_STALE_MS: 2000,
  });
});

after(async () => {
  await ctx?.app.close();
  if (mounted) execFileSync('umount', ['-l', volume]);
  await rm(volume, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
  await db?.drop();
});

test('an upload on a full volume gets 507 saying so; readiness and metrics report the low space', async () => {
  const image = await noise(300, 1);
  const filler = await fill(64 * 1024);
  try {
    const res = await upload(image);
    assert.equal(res.statusCode, 507, res.body);
    assert.equal(res.json().code, 'INSUFFICIENT_STORAGE');
    assert.match(res.json().message, /no space left/i);
    const ready = await ctx.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 200, 'reads still work: degraded, not out of rotation');
    assert.equal(ready.json().status, 'degraded');
    assert.equal(ready.json().checks.space.status, 'down');
    assert.match(ready.json().checks.space.error, /free on the image volume, under VOLUME_MIN_FREE_BYTES/);
    const metrics = (await ctx.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /images_volume_free_bytes\{[^}]*\} \d+/);
  } finally {
    await rm(filler);
  }
  const again = await upload(image);
  assert.equal(again.statusCode, 201, again.body);
  assert.equal((await ctx.app.inject({ url: '/readyz' })).json().checks.space.status, 'up');
});

test('an import that fills the volume keeps its files and finishes by itself once there is room', async () => {
  const count = 3000;
  const idx = await writeIdx(work, { count, seed: 9 });
  const form = multipart([
    { name: 'dataset', value: 'full' },
    { name: 'files', value: await readFile(idx.images), filename: 'train-images-idx3-ubyte' },
    { name: 'files', value: await readFile(idx.labels), filename: 'train-labels-idx1-ubyte' },
  ]);
  const posted = await ctx.app.inject({ method: 'POST', url: '/images/imports', ...form });
  assert.equal(posted.statusCode, 202, posted.body);
  const { id } = posted.json() as { id: string };
  const job = async () => (await ctx.app.inject({ url: `/images/imports/${id}` })).json();

  let current = await job();
  for (let deadline = Date.now() + 30_000; ['queued', 'running'].includes(current.status) && Date.now() < deadline; ) {
    await sleep(100);
    current = await job();
  }
  assert.equal(current.status, 'interrupted', JSON.stringify(current));
  assert.match(current.message, /ran out of space/);
  assert.ok(current.processed < count, `${current.processed} of ${count} before the volume filled`);
  assert.deepEqual(await readdir(join(volume, '.imports')), [id], "the job's uploaded files are kept");

  execFileSync('mount', ['-o', 'remount,size=64m', volume]);
  for (let deadline = Date.now() + 30_000; current.status !== 'completed' && Date.now() < deadline; ) {
    await sleep(200);
    current = await job();
  }
  assert.equal(current.status, 'completed', JSON.stringify(current));
  assert.equal(current.imported + current.duplicates, count);
});
