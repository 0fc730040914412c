import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { body, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

// The classic JokesDB contract: plain SQL clients use exactly these two statements
let db: TestDatabase;
let client: pg.Client;
let app: ReturnType<typeof testApp>;

before(async () => {
  db = await createTestDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
  app = testApp(db.url);
});

after(async () => {
  await app?.close();
  await client?.end();
  await db?.drop();
});

test('SELECT id, joke FROM jokes returns exactly the jokes the API serves', async () => {
  const { rows } = await client.query('SELECT id, joke FROM jokes');
  assert.ok(rows.length >= 25, 'the starter jokes are loaded');
  const served = new Map<number, string>();
  let cursor: string | null = null;
  do {
    const query: string = `/jokes?limit=100&safe=false${cursor ? `&cursor=${cursor}` : ''}`;
    const page = body<{ items: { id: number; joke: string }[]; nextCursor: string | null }>(
      await app.inject({ method: 'GET', url: query }),
    );
    for (const item of page.items) served.set(item.id, item.joke);
    cursor = page.nextCursor;
  } while (cursor);
  assert.deepEqual(new Map(rows.map((row) => [row.id, row.joke])), served);
});

test('a joke added with INSERT INTO jokes (joke) VALUES ($1) shows up in the API at once', async () => {
  const text = 'A plain SQL client walked in, inserted one column and was served like royalty.';
  await client.query('INSERT INTO jokes (joke) VALUES ($1)', [text]);
  const { rows } = await client.query('SELECT id, joke FROM jokes');
  const row = rows.find((candidate) => candidate.joke === text);
  assert.ok(row, 'the row is there');

  const one = await app.inject({ method: 'GET', url: `/jokes/${row.id}` });
  assert.equal(one.statusCode, 200);
  const { createdAt, updatedAt, ...served } = body<Record<string, unknown>>(one);
  assert.deepEqual(served, { id: row.id, joke: text, category: 'misc', lang: 'en', flags: [] });
  assert.equal(createdAt, updatedAt, 'both timestamps default to the insert time');

  const found = body<{ items: { id: number }[] }>(await app.inject({ method: 'GET', url: '/jokes?q=royalty' }));
  assert.deepEqual(
    found.items.map((item) => item.id),
    [row.id],
    'the search vector is computed by the database',
  );

  const dup = await app.inject({
    method: 'POST',
    url: '/jokes',
    payload: { joke: 'a plain sql client walked in -- inserted one column, and was served like ROYALTY' },
  });
  assert.equal(dup.statusCode, 409, 'the fingerprint is computed by the database too');
  assert.equal(body(dup).existingId, row.id);

  const misc = body<{ items: { id: number }[] }>(
    await app.inject({ method: 'GET', url: '/jokes/random?category=misc&count=10' }),
  );
  assert.ok(
    misc.items.some((item) => item.id === row.id),
    'random picks see it (misc holds fewer than 10 jokes, so all come back)',
  );
});

test('a joke added through the API is read back by SELECT id, joke FROM jokes', async () => {
  const text = 'The API wrote a row and the old SQL report read it without noticing anything had changed.';
  const created = await app.inject({ method: 'POST', url: '/jokes', payload: { joke: text, category: 'databases' } });
  assert.equal(created.statusCode, 201);
  const { rows } = await client.query('SELECT id, joke FROM jokes');
  assert.ok(rows.some((row) => row.id === body(created).id && row.joke === text));
});
