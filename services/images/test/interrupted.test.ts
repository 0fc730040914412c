import assert from 'node:assert/strict';
import { openAsBlob } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool } from '@berth/service-kit';
import { Store } from '../src/storage/store.ts';
import { sweep } from '../src/storage/sweep.ts';
import { leftovers, tempDir } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { writeIdx } from './helpers/datasets.ts';
import { type ServiceProcess, startService } from './helpers/process.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let work: Awaited<ReturnType<typeof tempDir>>;
let service: ServiceProcess | undefined;
let env: Record<string, string>;

const COUNT = 20_000;

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  work = await tempDir('berth-import-src-');
  env = { DATABASE_URL: db.url, IMAGES_DIR: dir.path, IMPORT_STALE_MS: '1000', IMPORT_BATCH: '500' };
});

after(async () => {
  await service?.stop('SIGKILL');
  await db?.drop();
  await dir?.remove();
  await work?.remove();
});

async function job(url: string, id: string) {
  return (await fetch(`${url}/images/imports/${id}`)).json() as Promise<Record<string, unknown>>;
}

async function until(url: string, id: string, done: (j: Record<string, unknown>) => boolean, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const current = await job(url, id);
    if (done(current)) return current;
    if (Date.now() > deadline) throw new Error(`Job never got there: ${JSON.stringify(current)}`);
    await sleep(50);
  }
}

/** How many content files (64 hex characters, under ab/cd/) the folder holds. */
async function contentFiles(root: string): Promise<number> {
  const names = await readdir(root, { recursive: true });
  return names.filter((name) => /^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(name)).length;
}

async function count(): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM images');
  return row?.n ?? 0;
}

test('a job cut off by a crash resumes by itself when the service starts again, without doubles', async () => {
  const idx = await writeIdx(work.path, { count: COUNT, seed: 5 });
  service = await startService(env);
  const form = new FormData();
  form.set('dataset', 'crash');
  form.append('files', await openAsBlob(idx.images), 'train-images-idx3-ubyte');
  form.append('files', await openAsBlob(idx.labels), 'train-labels-idx1-ubyte');
  const posted = await fetch(`${service.url}/images/imports`, { method: 'POST', body: form });
  assert.equal(posted.status, 202);
  const { id } = (await posted.json()) as { id: string };

  const partway = await until(service.url, id, (j) => (j.processed as number) >= 1000);
  assert.equal(partway.status, 'running');
  await service.stop('SIGKILL');
  const committed = await count();
  assert.ok(committed > 0 && committed < COUNT, `${committed} rows committed before the crash`);
  // temp files as the killed process leaves them (it may have died between batches), and one of a
  // live replica, which must stay
  const [{ owner } = { owner: '' }] = await db.query<{ owner: string }>('SELECT owner FROM import_jobs WHERE id = $1', [
    id,
  ]);
  const planted = [join('.tmp', `.tmp-${owner}-zz1`), join('ab', 'cd', `.tmp-${owner}-zz2`)];
  const alive = join('.tmp', '.tmp-aliveWriter1-1');
  await mkdir(join(dir.path, 'ab', 'cd'), { recursive: true });
  for (const name of [...planted, alive]) await writeFile(join(dir.path, name), 'partial');

  // a new process after the heartbeat went stale: start-up marks the job interrupted and queues it again
  await sleep(1200);
  service = await startService(env);
  const done = await until(service.url, id, (j) => j.status === 'completed');
  assert.deepEqual(
    { processed: done.processed, imported: done.imported, duplicates: done.duplicates, failed: done.failed },
    { processed: COUNT, imported: COUNT, duplicates: 0, failed: 0 },
  );
  assert.equal(done.attempts, 2);
  assert.equal(await count(), COUNT);
  // the dead process's temp files go when its job is found, not an hour later with the sweep
  const deadline = Date.now() + 10_000;
  let left = await leftovers(dir.path);
  while ((left.length !== 1 || left[0] !== alive) && Date.now() < deadline) {
    await sleep(100);
    left = await leftovers(dir.path);
  }
  // the killed batch's own temp files went with the planted ones; another writer's stays
  assert.deepEqual(left, [alive], `left: ${left.slice(0, 20).join(', ')}`);

  // files the crashed batch had renamed into place for rows that never committed: the sweep's
  const pool = createPool({ connectionString: db.url, applicationName: 'berth-images-test' });
  try {
    await sweep(pool, new Store(dir.path), { graceMs: 0 });
  } finally {
    await pool.end();
  }
  const [distinct] = await db.query<{ n: number }>('SELECT count(DISTINCT sha256)::int AS n FROM images');
  assert.equal(await contentFiles(dir.path), distinct?.n, 'one file per distinct content, no orphans');
});

test('SIGTERM during an import marks the job interrupted; past IMPORT_MAX_ATTEMPTS it waits for a retry', async () => {
  const idx = await writeIdx(work.path, { count: COUNT, seed: 6, prefix: 'term' });
  await service?.stop('SIGTERM');
  // one attempt only: the job is not resumed by itself, a retry finishes it
  const once = { ...env, IMPORT_MAX_ATTEMPTS: '1' };
  service = await startService(once);
  const form = new FormData();
  form.set('dataset', 'term');
  form.append('files', await openAsBlob(idx.images), 'term-images-idx3-ubyte');
  form.append('files', await openAsBlob(idx.labels), 'term-labels-idx1-ubyte');
  const { id } = (await (await fetch(`${service.url}/images/imports`, { method: 'POST', body: form })).json()) as {
    id: string;
  };
  await until(service.url, id, (j) => (j.processed as number) >= 1000);
  assert.equal(await service.stop('SIGTERM'), 0);
  service = await startService(once);
  await sleep(600);
  const stopped = await job(service.url, id);
  assert.equal(stopped.status, 'interrupted');
  assert.match(stopped.message as string, /retry it to finish/);
  await fetch(`${service.url}/images/imports/${id}/retry`, { method: 'POST' });
  const done = await until(service.url, id, (j) => j.status === 'completed');
  assert.equal(done.imported, COUNT);
  const [row] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM images WHERE dataset = 'term'");
  assert.equal(row?.n, COUNT);
});
