import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { multipart, numberedPng } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;
let seq = 100;

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

interface Img {
  id: string;
  sha256: string;
  label: string | null;
  split: string | null;
  tags: string[];
  dataset: string;
}

async function add(fields: Record<string, string>, png?: Buffer): Promise<Img> {
  const bytes = png ?? (await numberedPng(seq++));
  const form = multipart([
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
    { name: 'file', value: bytes, filename: 'x.png' },
  ]);
  const response = await ctx.app.inject({ method: 'POST', url: '/images', ...form });
  assert.ok(response.statusCode === 201 || response.statusCode === 200, response.body);
  return response.json();
}

const get = (url: string) => ctx.app.inject({ method: 'GET', url });

test('GET /images filters by dataset, label, split and tag and pages with keyset cursors', async () => {
  const made: Img[] = [];
  for (let i = 0; i < 7; i++) {
    made.push(
      await add({
        dataset: 'zoo',
        label: i % 2 ? 'giraffe' : 'zebra',
        split: i < 5 ? 'train' : 'test',
        tags: i === 3 ? 'tall,spotted' : 'plain',
      }),
    );
  }
  await add({ dataset: 'farm', label: 'giraffe' });

  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const query: string = `/images?dataset=zoo&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
    const page = (await get(query)).json();
    seen.push(...page.items.map((item: Img) => item.id));
    cursor = page.nextCursor;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(
    seen,
    made.map((m) => m.id),
    'all of them, oldest first, none twice',
  );

  const giraffes = (await get('/images?label=giraffe')).json();
  assert.deepEqual(
    giraffes.items.map((i: Img) => i.dataset),
    ['zoo', 'zoo', 'zoo', 'farm'],
  );
  const trainZebras = (await get('/images?dataset=zoo&label=zebra&split=train')).json();
  assert.equal(trainZebras.items.length, 3);
  const test_ = (await get('/images?dataset=zoo&split=test')).json();
  assert.equal(test_.items.length, 2);
  const tagged = (await get('/images?tag=spotted')).json();
  assert.deepEqual(
    tagged.items.map((i: Img) => i.id),
    [made[3]?.id],
  );
  const unsplit = (await get('/images?split=none')).json();
  assert.deepEqual(
    unsplit.items.map((i: Img) => i.dataset),
    ['farm'],
  );
});

test('a cursor only continues its own query; a made-up one is a 400 naming the cursor', async () => {
  const first = (await get('/images?dataset=zoo&limit=2')).json();
  assert.ok(first.nextCursor);
  const elsewhere = await get(`/images?dataset=farm&limit=2&cursor=${first.nextCursor}`);
  assert.equal(elsewhere.statusCode, 400);
  assert.match(elsewhere.json().message, /^Query parameter "cursor" belongs to a different query/);
  const bogus = await get('/images?cursor=abc');
  assert.equal(bogus.statusCode, 400);
  assert.match(bogus.json().message, /is not a cursor this API handed out/);
  const tooMany = await get('/images?limit=501');
  assert.equal(tooMany.statusCode, 400);
  assert.match(tooMany.json().message, /^Query parameter "limit" must be a whole number from 1 to 500/);
});

test('PATCH /images/:id changes label, split and tags, clears with null and checks types strictly', async () => {
  const image = await add({ dataset: 'patchy', label: 'cat' });
  const patch = (payload: unknown) =>
    ctx.app.inject({ method: 'PATCH', url: `/images/${image.id}`, payload: payload as object });
  const changed = await patch({ label: 'lion', split: 'val', tags: ['big', 'cat', 'big'] });
  assert.equal(changed.statusCode, 200, changed.body);
  assert.deepEqual(
    { label: changed.json().label, split: changed.json().split, tags: changed.json().tags },
    { label: 'lion', split: 'val', tags: ['big', 'cat'] },
  );
  assert.ok(changed.json().updatedAt >= changed.json().createdAt);
  const cleared = await patch({ label: null, split: null });
  assert.equal(cleared.json().label, null);
  assert.equal(cleared.json().split, null);
  const wrongType = await patch({ label: 42 });
  assert.equal(wrongType.statusCode, 400);
  const badLabel = await patch({ label: 'a/b' });
  assert.equal(badLabel.statusCode, 400);
  assert.match(badLabel.json().message, /label/);
  const nothing = await patch({});
  assert.equal(nothing.statusCode, 400);
  assert.match(nothing.json().message, /must name at least one of label, split, tags/);
  const unknown = await patch({ dataset: 'moved' });
  assert.equal(unknown.statusCode, 400);
  const missing = await ctx.app.inject({
    method: 'PATCH',
    url: '/images/01890000-0000-7000-8000-000000000000',
    payload: { label: 'x' },
  });
  assert.equal(missing.statusCode, 404);
});

test('DELETE /images/:id removes the row; the file stays while another data set holds the same bytes', async () => {
  const png = await numberedPng(9999);
  const a = await add({ dataset: 'del-a' }, png);
  const b = await add({ dataset: 'del-b' }, png);
  const thumb = await get(`/images/${a.id}/thumbnail?size=64`);
  assert.equal(thumb.statusCode, 200);

  const first = await ctx.app.inject({ method: 'DELETE', url: `/images/${a.id}` });
  assert.equal(first.statusCode, 204);
  assert.equal((await get(`/images/${a.id}`)).statusCode, 404);
  assert.equal(await ctx.store.has(a.sha256), true, 'still used by del-b');
  assert.equal((await get(`/images/${b.id}/file`)).statusCode, 200);

  const second = await ctx.app.inject({ method: 'DELETE', url: `/images/${b.id}` });
  assert.equal(second.statusCode, 204);
  assert.equal(await ctx.store.has(b.sha256), false, 'nothing refers to it any more');
  const again = await ctx.app.inject({ method: 'DELETE', url: `/images/${b.id}` });
  assert.equal(again.statusCode, 404);
});

test('GET /images/datasets and /images/labels count per data set, label and split', async () => {
  await add({ dataset: 'counted', label: 'a', split: 'train' });
  await add({ dataset: 'counted', label: 'a', split: 'test' });
  await add({ dataset: 'counted', label: 'b', split: 'train' });
  await add({ dataset: 'counted' });
  const datasets = (await get('/images/datasets')).json().items;
  const counted = datasets.find((d: { name: string }) => d.name === 'counted');
  assert.equal(counted.count, 4);
  assert.equal(counted.labels, 2);
  assert.deepEqual(counted.splits, { train: 2, test: 1, val: 0, none: 1 });
  assert.ok(counted.bytes > 0);
  const labels = (await get('/images/labels?dataset=counted')).json().items;
  assert.deepEqual(labels, [
    { label: 'a', count: 2, splits: { train: 1, test: 1, val: 0, none: 0 } },
    { label: 'b', count: 1, splits: { train: 1, test: 0, val: 0, none: 0 } },
    { label: null, count: 1, splits: { train: 0, test: 0, val: 0, none: 1 } },
  ]);
  const bad = await get('/images/labels?dataset=Bad!');
  assert.equal(bad.statusCode, 400);
});
