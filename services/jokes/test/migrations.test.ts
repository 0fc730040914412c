import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withDatabase } from '@berth/service-kit';
import pg from 'pg';
import { prepareDatabase } from '../src/setup.ts';
import { testApp } from './helpers/app.ts';
import { dropDatabase, SERVER_URL, uniqueName } from './helpers/database.ts';

const created: string[] = [];
const fresh = () => {
  const url = withDatabase(SERVER_URL, uniqueName('jokes_migrate'));
  created.push(url);
  return url;
};

after(async () => {
  await Promise.all(created.map(dropDatabase));
});

async function sql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

test('the migrate step creates a missing database, migrates it and loads at least 25 starter jokes', async () => {
  const url = fresh();
  const result = await prepareDatabase(url);
  assert.equal(result.createdDatabase, true);
  assert.deepEqual(result.applied, [
    '0001_jokesdb',
    '0002_joke-metadata',
    '0003_search-and-dedupe',
    '0004_random-key',
    '0005_seed-history',
  ]);
  assert.ok(result.seeded >= 25);
  const [counts] = await sql<{ total: number; safe: number; categories: number }>(
    url,
    "SELECT count(*)::int AS total, count(*) FILTER (WHERE flags = '{}')::int AS safe, count(DISTINCT category)::int AS categories FROM jokes",
  );
  assert.equal(counts?.total, result.seeded);
  assert.ok((counts?.safe ?? 0) >= 25, 'a fresh stack has safe jokes to serve');
  assert.ok((counts?.categories ?? 0) >= 5);
});

test('running it again changes nothing, and deleted starter jokes stay deleted', async () => {
  const url = fresh();
  await prepareDatabase(url);
  await sql(url, 'DELETE FROM jokes WHERE id IN (SELECT id FROM jokes ORDER BY id LIMIT 3)');
  const [before] = await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM jokes');
  const again = await prepareDatabase(url);
  assert.deepEqual(again, { createdDatabase: false, applied: [], seeded: 0 });
  const [afterwards] = await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM jokes');
  assert.equal(afterwards?.n, before?.n);
});

test('several migrate runs at once on a missing database all succeed and apply everything once', async () => {
  const url = fresh();
  const results = await Promise.all(Array.from({ length: 4 }, () => prepareDatabase(url)));
  assert.equal(results.filter((result) => result.createdDatabase).length, 1, 'one run created the database');
  assert.equal(results.filter((result) => result.applied.length === 5).length, 1, 'one run applied the migrations');
  assert.ok(results.every((result) => result.applied.length === 0 || result.applied.length === 5));
  const seeded = results.map((result) => result.seeded).filter((n) => n > 0);
  assert.equal(seeded.length, 1, 'the starter jokes were loaded once');
  const [row] = await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM jokes');
  assert.equal(row?.n, seeded[0]);
  const history = await sql(url, 'SELECT name FROM schema_migrations');
  assert.equal(history.length, 5);
});

test('an existing classic JokesDB table is adopted with its rows and ids', async () => {
  const url = fresh();
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  await sql(SERVER_URL, `CREATE DATABASE ${name}`);
  await sql(url, 'CREATE TABLE jokes (id SERIAL PRIMARY KEY, joke TEXT)');
  await sql(url, "INSERT INTO jokes (joke) VALUES ('A joke from the old days'), ('Another one from back then')");
  await prepareDatabase(url, { seed: false });
  const rows = await sql<{ id: number; joke: string; category: string; flags: string[] }>(
    url,
    'SELECT id, joke, category, flags FROM jokes ORDER BY id',
  );
  assert.deepEqual(rows, [
    { id: 1, joke: 'A joke from the old days', category: 'misc', flags: [] },
    { id: 2, joke: 'Another one from back then', category: 'misc', flags: [] },
  ]);
  await sql(url, "INSERT INTO jokes (joke) VALUES ('New rows still get ids from the old sequence')");
  const [last] = await sql<{ id: number }>(url, 'SELECT max(id) AS id FROM jokes');
  assert.equal(last?.id, 3);
});

const MIGRATE = fileURLToPath(new URL('../src/migrate.ts', import.meta.url));
const run = promisify(execFile);

async function migrateCommand(env: Record<string, string>) {
  try {
    const { stdout } = await run(process.execPath, [MIGRATE], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test('the migrate command prepares the database, exits 0, and exits 0 again when there is nothing to do', async () => {
  const url = fresh();
  const first = await migrateCommand({ DATABASE_URL: url });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /created the database/);
  assert.match(first.stdout, /added \d+ starter jokes/);
  const second = await migrateCommand({ DATABASE_URL: url });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /schema is up to date/);
  assert.match(second.stdout, /starter jokes already loaded/);
});

test('the migrate command stops with 78 naming DATABASE_URL when it is not a PostgreSQL URL', async () => {
  const result = await migrateCommand({ DATABASE_URL: 'mysql://localhost/jokes' });
  assert.equal(result.code, 78);
  assert.match(result.stderr, /DATABASE_URL/);
});

test('the service reports not ready until the migrate step has created its table', async () => {
  const url = fresh();
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  await sql(SERVER_URL, `CREATE DATABASE ${name}`);
  const app = testApp(url);
  try {
    const before = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(before.statusCode, 503);
    assert.match(before.body, /relation \\"jokes\\" does not exist/);
    await prepareDatabase(url, { seed: false });
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  } finally {
    await app.close();
  }
});
