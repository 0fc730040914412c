import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createPool } from '@berth/service-kit';
import pg from 'pg';
import { allowedFlags } from '../src/flags.ts';
import { type Filters, jokeRepository } from '../src/repository.ts';
import { body, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

interface Item {
  id: number;
  joke: string;
  category: string;
  flags: string[];
}

let db: TestDatabase;
let app: ReturnType<typeof testApp>;

before(async () => {
  db = await createTestDatabase({ seed: false });
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  // 5,000 jokes, every 10th flagged nsfw, every 7th political; categories a..e
  await client.query(`
    INSERT INTO jokes (joke, category, flags)
    SELECT 'Generated joke number ' || n || ' about crate ' || (n * 31 % 997),
           (ARRAY['alpha', 'bravo', 'charlie', 'delta', 'echo'])[1 + n % 5],
           CASE WHEN n % 10 = 0 THEN '{nsfw}'::text[] WHEN n % 7 = 0 THEN '{political}' ELSE '{}' END
    FROM generate_series(1, 5000) AS n`);
  await client.query(`INSERT INTO jokes (joke, category) VALUES ('The only joke in its category', 'lonely')`);
  await client.query('VACUUM ANALYZE jokes');
  await client.end();
  app = testApp(db.url);
});

after(async () => {
  await app?.close();
  await db?.drop();
});

const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

describe('GET /jokes/random', () => {
  test('returns one safe joke by default', async () => {
    for (let i = 0; i < 50; i++) {
      const response = await get('/jokes/random');
      assert.equal(response.statusCode, 200);
      assert.deepEqual(body<Item>(response).flags, []);
    }
  });

  test('spreads its picks over the table', async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(body<Item>(await get('/jokes/random')).id);
    assert.ok(seen.size > 150, `200 picks hit ${seen.size} different jokes`);
  });

  test('concurrent picks each get a safe joke of their own', async () => {
    const responses = await Promise.all(Array.from({ length: 40 }, () => get('/jokes/random')));
    assert.ok(responses.every((response) => response.statusCode === 200));
    const items = responses.map((response) => body<Item>(response));
    assert.ok(items.every((item) => item.flags.length === 0));
    const ids = new Set(items.map((item) => item.id));
    assert.ok(ids.size > 30, `40 picks at once hit ${ids.size} different jokes`);
  });

  test('concurrent picks with different filters each get what they asked for', async () => {
    const urls = ['/jokes/random?category=alpha', '/jokes/random?category=bravo', '/jokes/random?include=nsfw'];
    const responses = await Promise.all(Array.from({ length: 30 }, (_, i) => get(urls[i % 3] as string)));
    responses.forEach((response, i) => {
      const item = body<Item>(response);
      if (i % 3 === 0) assert.equal(item.category, 'alpha');
      if (i % 3 === 1) assert.equal(item.category, 'bravo');
      if (i % 3 === 2) assert.ok(item.flags.every((flag) => flag === 'nsfw'));
    });
  });

  test('count returns up to 10 different jokes as { items }', async () => {
    const response = await get('/jokes/random?count=10');
    assert.equal(response.statusCode, 200);
    const { items } = body<{ items: Item[] }>(response);
    assert.equal(items.length, 10);
    assert.equal(new Set(items.map((item) => item.id)).size, 10);
  });

  test('count above 10 is a 400 naming count', async () => {
    const response = await get('/jokes/random?count=11');
    assert.equal(response.statusCode, 400);
    assert.equal(body(response).message, 'Query parameter "count" must be a whole number from 1 to 10 (got 11)');
  });

  test('filters by category, and gives fewer than count when fewer exist', async () => {
    const { items } = body<{ items: Item[] }>(await get('/jokes/random?category=bravo&count=10'));
    assert.ok(items.length === 10 && items.every((item) => item.category === 'bravo'));
    const lonely = body<{ items: Item[] }>(await get('/jokes/random?category=lonely&count=5'));
    assert.deepEqual(
      lonely.items.map((item) => item.joke),
      ['The only joke in its category'],
    );
  });

  test('flagged jokes come only when asked for, minus exclude', async () => {
    const flags = new Set<string>();
    for (let i = 0; i < 30; i++) {
      for (const item of body<{ items: Item[] }>(await get('/jokes/random?safe=false&exclude=nsfw&count=10')).items) {
        for (const flag of item.flags) flags.add(flag);
      }
    }
    assert.deepEqual([...flags], ['political']);
    const nsfw = new Set<string>();
    for (let i = 0; i < 30; i++) {
      for (const item of body<{ items: Item[] }>(await get('/jokes/random?include=nsfw&count=10')).items) {
        for (const flag of item.flags) nsfw.add(flag);
      }
    }
    assert.deepEqual([...nsfw], ['nsfw']);
  });

  test('Accept: text/plain gives the joke text alone', async () => {
    const response = await get('/jokes/random?category=lonely', { accept: 'text/plain' });
    assert.equal(response.statusCode, 200);
    assert.equal(response.body, 'The only joke in its category\n');
  });

  test('returns 404 when no joke matches', async () => {
    const response = await get('/jokes/random?category=nothing-here');
    assert.equal(response.statusCode, 404);
    assert.equal(body(response).code, 'NO_JOKES');
  });
});

describe('query plans', () => {
  // Every statement the repository sends is recorded, then explained with the same parameters
  async function plans(run: (filters: (query: string) => Filters, repo: ReturnType<typeof jokeRepository>) => unknown) {
    const pool = createPool({ connectionString: db.url, applicationName: 'plan-test' });
    const sent: { text: string; values: unknown[] }[] = [];
    const original = pool.query.bind(pool);
    pool.query = ((config: { text: string; values: unknown[] }) => {
      sent.push({ text: config.text, values: config.values });
      return original(config);
    }) as unknown as typeof pool.query;
    const filters = (query: string) => {
      const params = new URLSearchParams(query);
      const visibility = {
        safe: params.get('safe') === 'false' ? false : undefined,
        include: params.get('include') ?? undefined,
        exclude: params.get('exclude') ?? undefined,
      };
      return { category: params.get('category') ?? undefined, allowed: allowedFlags(visibility) };
    };
    await run(filters, jokeRepository(pool));
    const nodes: string[] = [];
    for (const { text, values } of sent) {
      const { rows } = await original(`EXPLAIN (FORMAT JSON) ${text}`, values);
      const walk = (node: Record<string, unknown>) => {
        nodes.push(`${node['Node Type']}${node['Relation Name'] ? ` on ${node['Relation Name']}` : ''}`);
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
      };
      walk(rows[0]['QUERY PLAN'][0].Plan);
    }
    await pool.end();
    return nodes;
  }

  for (const query of ['', 'category=charlie', 'safe=false', 'safe=false&exclude=nsfw', 'include=political']) {
    test(`a random pick (${query || 'defaults'}) neither scans nor sorts the table`, async () => {
      const nodes = await plans((filters, repo) => repo.random(filters(query), 10));
      assert.ok(nodes.includes('Index Scan on jokes'), nodes.join(', '));
      assert.ok(!nodes.some((node) => node.startsWith('Seq Scan') || node === 'Sort'), nodes.join(', '));
    });
  }

  test('a keyset page walks an index, never OFFSET or a table scan', async () => {
    const nodes = await plans((filters, repo) => repo.list(filters('category=delta'), 20, { id: 2500 }));
    assert.ok(!nodes.some((node) => node.startsWith('Seq Scan')), nodes.join(', '));
  });

  test('a search reads the GIN index', async () => {
    const nodes = await plans((filters, repo) => repo.search('4242', filters(''), 20));
    assert.ok(nodes.includes('Bitmap Index Scan'), nodes.join(', '));
    assert.ok(!nodes.some((node) => node.startsWith('Seq Scan')), nodes.join(', '));
  });
});
