import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { body, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

interface Item {
  id: number;
  joke: string;
  category: string;
  lang: string;
  flags: string[];
}
interface Page {
  items: Item[];
  nextCursor: string | null;
}

let db: TestDatabase;
let app: ReturnType<typeof testApp>;

before(async () => {
  db = await createTestDatabase({ seed: false });
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  // 30 safe jokes about ships in two categories, 3 flagged ones, 1 German one
  for (let i = 1; i <= 30; i++) {
    const extra = i % 3 === 0 ? ' The harbour pilot laughed about the ship twice.' : '';
    await client.query('INSERT INTO jokes (joke, category) VALUES ($1, $2)', [
      `Ship number ${i} sailed in with cargo ${i * 7}.${extra}`,
      i % 2 === 0 ? 'containers' : 'puns',
    ]);
  }
  await client.query(`INSERT INTO jokes (joke, category, flags) VALUES
    ('A flagged ship joke about elections', 'puns', '{political}'),
    ('A flagged ship joke about sermons', 'puns', '{religious}'),
    ('A flagged ship joke about both', 'puns', '{political,religious}')`);
  await client.query(`INSERT INTO jokes (joke, category, lang) VALUES ('Das Schiff fährt in den Hafen', 'puns', 'de')`);
  await client.end();
  app = testApp(db.url);
});

after(async () => {
  await app?.close();
  await db?.drop();
});

const get = async (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

async function all(url: string): Promise<Item[]> {
  const items: Item[] = [];
  let cursor: string | null = null;
  do {
    const response = await get(`${url}${url.includes('?') ? '&' : '?'}limit=7${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(response.statusCode, 200, response.body);
    const page = body<Page>(response);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

describe('GET /jokes', () => {
  test('pages through every safe joke in id order with keyset cursors', async () => {
    const items = await all('/jokes');
    assert.equal(items.length, 31);
    const ids = items.map((item) => item.id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    assert.ok(items.every((item) => item.flags.length === 0));
  });

  test('returns nextCursor null on the last page', async () => {
    const page = body<Page>(await get('/jokes?limit=100'));
    assert.equal(page.items.length, 31);
    assert.equal(page.nextCursor, null);
  });

  test('filters by category and by lang', async () => {
    const containers = await all('/jokes?category=containers');
    assert.equal(containers.length, 15);
    assert.ok(containers.every((item) => item.category === 'containers'));
    const german = body<Page>(await get('/jokes?lang=de'));
    assert.deepEqual(
      german.items.map((item) => item.joke),
      ['Das Schiff fährt in den Hafen'],
    );
  });

  test('shows flagged jokes only when asked: safe=false, include and exclude', async () => {
    const flagged = (items: Item[]) => items.filter((item) => item.flags.length > 0).map((item) => item.joke);
    assert.equal(flagged(await all('/jokes?safe=false')).length, 3);
    assert.deepEqual(flagged(await all('/jokes?include=political')), ['A flagged ship joke about elections']);
    assert.deepEqual(flagged(await all('/jokes?safe=false&exclude=political')), ['A flagged ship joke about sermons']);
    assert.equal(flagged(await all('/jokes?include=political,religious')).length, 3);
  });

  test('q searches full text, best match first, and pages on (rank, id)', async () => {
    const found = await all('/jokes?q=harbour%20pilot');
    assert.equal(found.length, 10);
    const first = body<Page>(await get('/jokes?q=ship%20pilot&limit=3'));
    assert.match(first.items[0]?.joke ?? '', /pilot/, 'jokes with both words rank above jokes with one');
    const everything = await all('/jokes?q=ship');
    assert.equal(everything.length, 30, 'the same set as an unpaged query, each joke once');
    assert.equal(new Set(everything.map((item) => item.id)).size, 30);
  });

  test('identical searches at the same moment get the same page, and a joke added before them', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query("INSERT INTO jokes (joke) VALUES ('A ship full of marmalade docked at noon')");
      const responses = await Promise.all(Array.from({ length: 12 }, () => get('/jokes?q=marmalade')));
      assert.ok(responses.every((response) => response.body === responses[0]?.body));
      assert.deepEqual(
        body<Page>(responses[0] as Awaited<ReturnType<typeof get>>).items.map((item) => item.joke),
        ['A ship full of marmalade docked at noon'],
      );
    } finally {
      await client.query("DELETE FROM jokes WHERE joke LIKE '%marmalade%'");
      await client.end();
    }
  });

  test('a joke in a list or search page is the same JSON as the joke on its own', async () => {
    const listed = JSON.parse((await get('/jokes?limit=3')).body).items;
    const found = JSON.parse((await get('/jokes?q=pilot&limit=3')).body).items;
    for (const item of [...listed, ...found]) {
      // same keys, order and formats, byte for byte
      assert.equal(JSON.stringify(item), (await get(`/jokes/${item.id}`)).body);
      assert.match(item.createdAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
    assert.equal(listed.length + found.length, 6);
  });

  test('q stems English words and matches other languages by their exact words', async () => {
    assert.equal(body<Page>(await get('/jokes?q=sails&limit=100')).items.length, 30);
    assert.equal(body<Page>(await get('/jokes?q=Hafen')).items.length, 1);
    assert.equal(body<Page>(await get('/jokes?q=Hafen&lang=de')).items.length, 1);
  });

  test('q treats SQL and search syntax as plain words', async () => {
    for (const q of ["'; DROP TABLE jokes; --", 'ship & | ! ( ) : *', '" OR 1=1 --', '\\x00']) {
      const response = await get(`/jokes?q=${encodeURIComponent(q)}`);
      assert.equal(response.statusCode, 200, `${q}: ${response.body}`);
    }
    assert.equal(body<Page>(await get('/jokes?limit=100')).items.length, 31, 'the table is still there');
  });

  test('a cursor only continues the query it came from', async () => {
    const page = body<Page>(await get('/jokes?q=ship&limit=2'));
    assert.ok(page.nextCursor);
    const other = await get(`/jokes?q=cargo&limit=2&cursor=${page.nextCursor}`);
    assert.equal(other.statusCode, 400);
    assert.match(body(other).message as string, /"cursor" belongs to a different query/);
    const plain = await get(`/jokes?limit=2&cursor=${page.nextCursor}`);
    assert.equal(plain.statusCode, 400);
  });

  test('invalid cursors are a 400 naming the cursor', async () => {
    const forged = Buffer.from(JSON.stringify([1, 'x', '1; DROP TABLE jokes'])).toString('base64url');
    for (const cursor of ['abc', forged, 'not%20base64', 'A'.repeat(201)]) {
      const response = await get(`/jokes?cursor=${cursor}`);
      assert.equal(response.statusCode, 400, cursor);
      assert.match(body(response).message as string, /"cursor"/);
    }
  });
});

describe('GET /jokes/:id', () => {
  test('returns the joke as JSON, or its text alone for Accept: text/plain', async () => {
    const json = await get('/jokes/1');
    assert.equal(json.statusCode, 200);
    assert.equal(body<Item>(json).joke, 'Ship number 1 sailed in with cargo 7.');
    const text = await get('/jokes/1', { accept: 'text/plain' });
    assert.equal(text.statusCode, 200);
    assert.match(text.headers['content-type'] as string, /^text\/plain/);
    assert.equal(text.body, 'Ship number 1 sailed in with cargo 7.\n');
    const preferred = await get('/jokes/1', { accept: 'application/json;q=0.5, text/plain' });
    assert.equal(preferred.body, 'Ship number 1 sailed in with cargo 7.\n');
    const any = await get('/jokes/1', { accept: '*/*' });
    assert.match(any.headers['content-type'] as string, /^application\/json/);
  });

  test('returns 404 for an unknown id', async () => {
    const response = await get('/jokes/999999');
    assert.equal(response.statusCode, 404);
    assert.equal(body(response).message, 'Joke 999999 does not exist');
  });

  test('keeps a flagged joke back unless asked for', async () => {
    const flagged = (await all('/jokes?safe=false')).find((item) => item.flags.includes('political'));
    assert.ok(flagged);
    const hidden = await get(`/jokes/${flagged.id}`);
    assert.equal(hidden.statusCode, 403);
    assert.match(body(hidden).message as string, /flagged "political"/);
    assert.equal((await get(`/jokes/${flagged.id}?safe=false`)).statusCode, 200);
    assert.equal((await get(`/jokes/${flagged.id}?include=${flagged.flags.join(',')}`)).statusCode, 200);
  });
});

describe('GET /jokes/categories', () => {
  test('counts the safe jokes per category', async () => {
    const response = await get('/jokes/categories');
    assert.equal(response.statusCode, 200);
    assert.deepEqual(body(response).items, [
      { name: 'containers', count: 15 },
      { name: 'puns', count: 16 },
    ]);
  });

  test('counts flagged jokes too with safe=false, and by language', async () => {
    assert.deepEqual(body(await get('/jokes/categories?safe=false')).items, [
      { name: 'containers', count: 15 },
      { name: 'puns', count: 19 },
    ]);
    assert.deepEqual(body(await get('/jokes/categories?lang=de')).items, [{ name: 'puns', count: 1 }]);
  });
});
