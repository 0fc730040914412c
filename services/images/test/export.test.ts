import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { multipart, numberedPng } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;

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

async function add(n: number, fields: Record<string, string>) {
  const form = multipart([
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
    { name: 'file', value: await numberedPng(n), filename: `${n}.png` },
  ]);
  return (await ctx.app.inject({ method: 'POST', url: '/images', ...form })).json();
}

async function entries(archive: Buffer): Promise<Map<string, Buffer>> {
  const extract = tar.extract();
  const found = new Map<string, Buffer>();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      found.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  extract.end(archive);
  await done;
  return found;
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

test('GET /images/datasets/:name/export streams an ImageFolder tar, <split>/<label>/<id>.<ext>', async () => {
  const made = [
    await add(1, { dataset: 'exp', label: 'cat', split: 'train' }),
    await add(2, { dataset: 'exp', label: 'cat', split: 'test' }),
    await add(3, { dataset: 'exp', label: 'dog' }),
    await add(4, { dataset: 'exp' }),
    await add(5, { dataset: 'other', label: 'cat' }),
  ];
  const response = await ctx.app.inject({ method: 'GET', url: '/images/datasets/exp/export' });
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'application/x-tar');
  assert.equal(response.headers['content-disposition'], 'attachment; filename="exp.tar"');
  const found = await entries(response.rawPayload);
  const expected = new Map([
    [`train/cat/${made[0].id}.png`, made[0].sha256],
    [`test/cat/${made[1].id}.png`, made[1].sha256],
    [`dog/${made[2].id}.png`, made[2].sha256],
    [`unlabeled/${made[3].id}.png`, made[3].sha256],
  ]);
  assert.deepEqual([...found.keys()].sort(), [...expected.keys()].sort());
  for (const [name, bytes] of found) assert.equal(sha(bytes), expected.get(name), name);
});

test('an exported tar imports back as the same data set: same labels, splits and bytes', async () => {
  const exported = (await ctx.app.inject({ method: 'GET', url: '/images/datasets/exp/export' })).rawPayload;
  // the rows without a split or label are left out so the tree has one shape
  const tree = await entries(exported);
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk) => {
    chunks.push(chunk as Buffer);
  });
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const [name, bytes] of tree) if (name.split('/').length === 3) pack.entry({ name }, bytes);
  pack.finalize();
  await ended;
  const form = multipart([
    { name: 'dataset', value: 'exp-copy' },
    { name: 'files', value: Buffer.concat(chunks), filename: 'exp.tar' },
  ]);
  const job = (await ctx.app.inject({ method: 'POST', url: '/images/imports', ...form })).json();
  let status = { status: 'queued', imported: 0 };
  for (let i = 0; i < 300 && (status.status === 'queued' || status.status === 'running'); i++) {
    await ctx.app.imports.idle();
    status = (await ctx.app.inject({ method: 'GET', url: `/images/imports/${job.id}` })).json();
    if (status.status === 'queued' || status.status === 'running') await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status.imported, 2);
  const labels = (await ctx.app.inject({ method: 'GET', url: '/images/labels?dataset=exp-copy' })).json().items;
  assert.deepEqual(labels, [{ label: 'cat', count: 2, splits: { train: 1, test: 1, val: 0, none: 0 } }]);
});

test('exporting a data set with no images is a 404; a bad name is a 400', async () => {
  const none = await ctx.app.inject({ method: 'GET', url: '/images/datasets/nothing-here/export' });
  assert.equal(none.statusCode, 404);
  assert.equal(none.json().message, 'Data set "nothing-here" holds no images');
  const bad = await ctx.app.inject({ method: 'GET', url: '/images/datasets/Bad%20Name/export' });
  assert.equal(bad.statusCode, 400);
});

test('an export of many images keeps every one, in id order', async () => {
  const ids: string[] = [];
  for (let n = 100; n < 160; n++) ids.push((await add(n, { dataset: 'many', label: 'x', split: 'val' })).id);
  const found = await entries(
    (await ctx.app.inject({ method: 'GET', url: '/images/datasets/many/export' })).rawPayload,
  );
  assert.deepEqual(
    [...found.keys()],
    ids.sort().map((id) => `val/x/${id}.png`),
  );
});
