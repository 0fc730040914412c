import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decode } from 'fast-png';
import sharp from 'sharp';
import { leftovers, tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { tarOf, writeCifar, writeIdx } from './helpers/datasets.ts';
import { multipart, numberedPng } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let work: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  work = await tempDir('berth-import-src-');
  ctx = await testApp(db.url, dir.path, { IMPORT_BATCH: 64 });
});

after(async () => {
  await ctx?.app.close();
  await db?.drop();
  await dir?.remove();
  await work?.remove();
});

async function postImport(fields: Record<string, string>, files: { name: string; bytes: Buffer }[]) {
  const form = multipart([
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
    ...files.map((file) => ({ name: 'files', value: file.bytes, filename: file.name })),
  ]);
  return ctx.app.inject({ method: 'POST', url: '/images/imports', ...form });
}

async function finished(id: string) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await ctx.app.imports.idle();
    const response = await ctx.app.inject({ method: 'GET', url: `/images/imports/${id}` });
    assert.equal(response.statusCode, 200);
    const job = response.json();
    if ((job.status !== 'queued' && job.status !== 'running') || Date.now() > deadline) return job;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('an IDX pair imports as lossless PNGs labelled by digit, batched, with an exact job report', async () => {
  const idx = await writeIdx(work.path, { count: 150, rows: 28, cols: 28, gzip: true });
  const response = await postImport({ dataset: 'mnist' }, [
    { name: 'train-images-idx3-ubyte.gz', bytes: await readFile(idx.images) },
    { name: 'train-labels-idx1-ubyte.gz', bytes: await readFile(idx.labels) },
  ]);
  assert.equal(response.statusCode, 202, response.body);
  const created = response.json();
  assert.equal(created.format, 'idx');
  assert.equal(created.total, 150);
  assert.equal(response.headers.location, `/images/imports/${created.id}`);

  const job = await finished(created.id);
  assert.deepEqual(
    { status: job.status, total: job.total, processed: job.processed, imported: job.imported, failed: job.failed },
    { status: 'completed', total: 150, processed: 150, imported: 150, failed: 0 },
  );
  const labels = (await ctx.app.inject({ method: 'GET', url: '/images/labels?dataset=mnist' })).json().items;
  assert.equal(
    labels.reduce((sum: number, l: { count: number }) => sum + l.count, 0),
    150,
  );
  // the file name says train, so the split is train
  assert.ok(labels.every((l: { splits: { train: number }; count: number }) => l.splits.train === l.count));

  const page = (await ctx.app.inject({ method: 'GET', url: '/images?dataset=mnist&limit=3' })).json();
  const first = page.items[0];
  assert.equal(first.format, 'png');
  assert.equal(first.label, String(idx.labelBytes[0]));
  const file = await ctx.app.inject({ method: 'GET', url: first.fileUrl });
  const decoded = decode(file.rawPayload);
  assert.equal(decoded.width, 28);
  assert.equal(decoded.channels, 1);
  assert.deepEqual(Buffer.from(decoded.data), idx.pixels.subarray(0, 28 * 28), 'decoded pixels equal the input');
  assert.equal((await sharp(file.rawPayload).metadata()).channels, 1);
  assert.deepEqual(await readdir(ctx.store.importDir(created.id)).catch(() => 'gone'), 'gone');
});

test('importing the same files again stores nothing twice: every record is a duplicate', async () => {
  const idx = await writeIdx(work.path, { count: 40, prefix: 'again', seed: 3 });
  const files = [
    { name: 'again-images-idx3-ubyte', bytes: await readFile(idx.images) },
    { name: 'again-labels-idx1-ubyte', bytes: await readFile(idx.labels) },
  ];
  const one = await finished((await postImport({ dataset: 'again', split: 'val' }, files)).json().id);
  assert.equal(one.imported, 40);
  const two = await finished((await postImport({ dataset: 'again', split: 'val' }, files)).json().id);
  assert.deepEqual(
    { imported: two.imported, duplicates: two.duplicates, status: two.status },
    {
      imported: 0,
      duplicates: 40,
      status: 'completed',
    },
  );
  const [row] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM images WHERE dataset = 'again'");
  assert.equal(row?.n, 40);
});

test('CIFAR-10 batches import with class names from batches.meta.txt', async () => {
  const path = join(work.path, 'data_batch_1.bin');
  const bytes = await writeCifar(path, 30);
  const meta = Buffer.from('plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n');
  const response = await postImport({ dataset: 'cifar' }, [
    { name: 'data_batch_1.bin', bytes },
    { name: 'batches.meta.txt', bytes: meta },
  ]);
  assert.equal(response.statusCode, 202, response.body);
  const job = await finished(response.json().id);
  assert.equal(job.status, 'completed');
  assert.equal(job.imported, 30);
  const cats = (await ctx.app.inject({ method: 'GET', url: '/images?dataset=cifar&label=cat' })).json().items;
  assert.equal(cats.length, 3);
  assert.equal(cats[0].channels, 3);
  assert.equal(cats[0].width, 32);
});

test('an ImageFolder tar imports <split>/<label>/ files and reports the entries it skipped, with reasons', async () => {
  const archive = await tarOf([
    { name: 'train/', type: 'directory' },
    { name: 'train/cat/a.png', bytes: await numberedPng(1) },
    { name: 'train/cat/b.png', bytes: await numberedPng(2) },
    { name: 'train/dog/c.png', bytes: await numberedPng(3) },
    { name: 'test/dog/d.png', bytes: await numberedPng(4) },
    { name: 'test/dog/broken.png', bytes: Buffer.from('not really a png') },
    { name: 'test/dog/link.png', type: 'symlink', linkname: '/etc/passwd' },
    { name: '../escape/e.png', bytes: await numberedPng(5) },
  ]);
  const response = await postImport({ dataset: 'pets' }, [{ name: 'pets.tar', bytes: archive }]);
  assert.equal(response.statusCode, 202, response.body);
  const job = await finished(response.json().id);
  assert.equal(job.status, 'completed');
  assert.equal(job.format, 'imagefolder');
  assert.equal(job.imported, 4);
  assert.equal(job.failed, 3);
  const reasons = job.errors.map((e: { record: string; message: string }) => `${e.record}: ${e.message}`).join('\n');
  assert.match(reasons, /broken\.png/);
  assert.match(reasons, /link/);
  assert.match(reasons, /escape/);
  const labels = (await ctx.app.inject({ method: 'GET', url: '/images/labels?dataset=pets' })).json().items;
  assert.deepEqual(labels, [
    { label: 'cat', count: 2, splits: { train: 2, test: 0, val: 0, none: 0 } },
    { label: 'dog', count: 2, splits: { train: 1, test: 1, val: 0, none: 0 } },
  ]);
});

test('malformed data set files are refused at once with the reason; nothing is kept', async () => {
  const wrongMagic = Buffer.alloc(64, 0);
  wrongMagic.writeUInt32BE(0x00000804, 0);
  const response = await postImport({ dataset: 'bad', format: 'idx' }, [{ name: 'x-images', bytes: wrongMagic }]);
  assert.equal(response.statusCode, 422, response.body);
  assert.equal(response.json().code, 'INVALID_DATASET');
  const idx = await writeIdx(work.path, { count: 10, prefix: 'short' });
  const truncated = (await readFile(idx.images)).subarray(0, 16 + 28 * 28 * 5 + 100);
  const short = await postImport({ dataset: 'bad' }, [
    { name: 'short-images-idx3-ubyte', bytes: truncated },
    { name: 'short-labels-idx1-ubyte', bytes: await readFile(idx.labels) },
  ]);
  assert.equal(short.statusCode, 422);
  assert.match(short.json().message, /truncated/);
  const noDataset = await postImport({}, [{ name: 'x', bytes: Buffer.from('x') }]);
  assert.equal(noDataset.statusCode, 400);
  assert.equal(noDataset.json().message, 'Form field "dataset" is required');
  const badFormat = await postImport({ dataset: 'bad', format: 'mnist' }, [{ name: 'x', bytes: Buffer.from('x') }]);
  assert.equal(badFormat.statusCode, 400);
  assert.equal((await readdir(join(dir.path, '.imports'))).length, 0);
  const [jobs] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM import_jobs WHERE dataset = 'bad'");
  assert.equal(jobs?.n, 0);
});

test('a truncated gzip IDX fails the job with the reason and keeps the records read before it', async () => {
  const idx = await writeIdx(work.path, { count: 300, prefix: 'cut', gzip: true, seed: 11 });
  const whole = await readFile(idx.images);
  const response = await postImport({ dataset: 'cut' }, [
    { name: 'cut-images-idx3-ubyte.gz', bytes: whole.subarray(0, Math.floor(whole.length * 0.5)) },
    { name: 'cut-labels-idx1-ubyte.gz', bytes: await readFile(idx.labels) },
  ]);
  assert.equal(response.statusCode, 202, response.body);
  const job = await finished(response.json().id);
  assert.equal(job.status, 'failed');
  assert.match(job.message, /truncated/);
  const [row] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM images WHERE dataset = 'cut'");
  assert.equal(row?.n, job.imported);
  assert.ok(job.imported > 0 && job.imported < 300);
});

test('a batch whose commit fails ends the job; the batch written meanwhile leaves no temp file and no file without a row', async () => {
  // the third batch of 64 is refused by the database; the fourth has its files written while
  // the third commits, so they must go with it
  await db.query(`CREATE FUNCTION refuse_third_batch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF (SELECT count(*) FROM images WHERE dataset = 'refused') >= 128 THEN
        RAISE EXCEPTION 'refused for the test';
      END IF;
      RETURN NEW;
    END $$`);
  await db.query(`CREATE TRIGGER refuse_third_batch BEFORE INSERT ON images FOR EACH ROW
    WHEN (NEW.dataset = 'refused') EXECUTE FUNCTION refuse_third_batch()`);
  try {
    const idx = await writeIdx(work.path, { count: 400, prefix: 'refused', seed: 17 });
    const response = await postImport({ dataset: 'refused' }, [
      { name: 'refused-images-idx3-ubyte', bytes: await readFile(idx.images) },
      { name: 'refused-labels-idx1-ubyte', bytes: await readFile(idx.labels) },
    ]);
    assert.equal(response.statusCode, 202, response.body);
    const job = await finished(response.json().id);
    assert.deepEqual(
      { status: job.status, imported: job.imported, processed: job.processed },
      { status: 'failed', imported: 128, processed: 128 },
    );
    assert.deepEqual(await leftovers(dir.path), []);
    const rows = await db.query<{ sha256: string }>(`SELECT DISTINCT sha256 FROM images`);
    const files = (await readdir(dir.path, { recursive: true })).filter((name) =>
      /^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(name),
    );
    assert.deepEqual(files.map((name) => name.slice(6)).sort(), rows.map((row) => row.sha256).sort());
  } finally {
    await db.query('DROP TRIGGER refuse_third_batch ON images');
    await db.query('DROP FUNCTION refuse_third_batch()');
  }
});

test('GET /images/imports/:id is a 404 for an unknown job; retry is a 409 unless the job was interrupted', async () => {
  const unknown = await ctx.app.inject({ method: 'GET', url: '/images/imports/01890000-0000-7000-8000-000000000000' });
  assert.equal(unknown.statusCode, 404);
  const [job] = await db.query<{ id: string }>("SELECT id FROM import_jobs WHERE status = 'completed' LIMIT 1");
  const retry = await ctx.app.inject({ method: 'POST', url: `/images/imports/${job?.id}/retry` });
  assert.equal(retry.statusCode, 409);
  assert.match(retry.json().message, /is completed; only an interrupted job can be retried/);
});

test('a multipart body cut short is a 400 naming the problem; no job and no files are left', async () => {
  const whole = multipart([
    { name: 'dataset', value: 'cut-short' },
    { name: 'files', value: await numberedPng(7), filename: 'a.png' },
  ]);
  for (const keep of [0.05, 0.3, 0.7]) {
    const payload = whole.payload.subarray(0, Math.floor(whole.payload.length * keep));
    const response = await ctx.app.inject({ method: 'POST', url: '/images/imports', payload, headers: whole.headers });
    assert.equal(response.statusCode, 400, `${keep}: ${response.body}`);
    assert.match(response.json().code, /^(INVALID_MULTIPART|INCOMPLETE_UPLOAD)$/);
  }
  const jobs = await db.query<{ id: string }>("SELECT id FROM import_jobs WHERE dataset = 'cut-short'");
  assert.deepEqual(jobs, []);
  // a job's folder is named after it; the refused ones took theirs away
  const folders = await readdir(join(dir.path, '.imports')).catch(() => []);
  const known = await db.query<{ id: string }>('SELECT id FROM import_jobs');
  assert.deepEqual(
    folders.filter((name) => !known.some((job) => job.id === name)),
    [],
  );
});
