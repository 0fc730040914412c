import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import {
  databaseName,
  dropDatabase,
  ensureDatabase,
  migrateDatabase,
  redactUrl,
  runMigrations,
  withDatabase,
} from '../src/index.ts';

const SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const databases: string[] = [];
const folders: string[] = [];

function freshUrl(): string {
  const url = withDatabase(SERVER_URL, `kit_migrate_${process.pid}_${randomBytes(4).toString('hex')}`);
  databases.push(url);
  return url;
}

async function migrationsDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kit-migrations-'));
  folders.push(dir);
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

after(async () => {
  for (const url of databases) {
    await dropDatabase(url);
  }
  for (const dir of folders) await rm(dir, { recursive: true, force: true });
});

const TWO_STEPS = {
  '0001_log.sql': `-- Up Migration
CREATE TABLE applied_log (step text NOT NULL, at timestamptz NOT NULL DEFAULT now());
INSERT INTO applied_log (step) VALUES ('one');
-- Down Migration
DROP TABLE applied_log;
`,
  '0002_more.sql': `-- Up Migration
INSERT INTO applied_log (step) VALUES ('two');
CREATE TABLE things (id int PRIMARY KEY);
-- Down Migration
DROP TABLE things;
`,
};

describe('URL helpers', () => {
  test('name the database, switch it and hide the password', () => {
    const url = 'postgres://admin:s3cret@db:5432/ms3_jokes?sslmode=disable';
    assert.equal(databaseName(url), 'ms3_jokes');
    assert.equal(withDatabase(url, 'postgres'), 'postgres://admin:s3cret@db:5432/postgres?sslmode=disable');
    assert.equal(redactUrl(url), 'postgres://admin:***@db:5432/ms3_jokes?sslmode=disable');
    assert.throws(() => databaseName('postgres://db:5432/'), /names no database/);
  });
});

describe('ensureDatabase', () => {
  test('creates a missing database once, even when several callers race', async () => {
    const url = freshUrl();
    const created = await Promise.all(Array.from({ length: 5 }, () => ensureDatabase(url)));
    assert.equal(created.filter(Boolean).length, 1);
    assert.equal(await ensureDatabase(url), false);
  });
});

describe('runMigrations', () => {
  test('applies pending SQL migrations in order, and nothing the second time', async () => {
    const url = freshUrl();
    await ensureDatabase(url);
    const dir = await migrationsDir(TWO_STEPS);
    assert.deepEqual(await runMigrations({ databaseUrl: url, dir }), ['0001_log', '0002_more']);
    assert.deepEqual(await runMigrations({ databaseUrl: url, dir }), []);
    const steps = await query<{ step: string }>(url, 'SELECT step FROM applied_log ORDER BY at, step');
    assert.deepEqual(
      steps.map((row) => row.step),
      ['one', 'two'],
    );
  });

  test('replicas migrating at the same moment wait for the lock and apply each step once', async () => {
    const url = freshUrl();
    await ensureDatabase(url);
    const dir = await migrationsDir({
      ...TWO_STEPS,
      // slow enough that the runs really overlap
      '0003_slow.sql': "-- Up Migration\nSELECT pg_sleep(0.3);\nINSERT INTO applied_log (step) VALUES ('three');\n",
    });
    const runs = await Promise.all(Array.from({ length: 4 }, () => runMigrations({ databaseUrl: url, dir })));
    assert.equal(runs.filter((applied) => applied.length === 3).length, 1);
    assert.equal(runs.filter((applied) => applied.length === 0).length, 3);
    const [row] = await query<{ n: number }>(url, 'SELECT count(*)::int AS n FROM applied_log');
    assert.equal(row?.n, 3);
  });

  test('a failing migration rolls back the whole batch', async () => {
    const url = freshUrl();
    await ensureDatabase(url);
    const dir = await migrationsDir({ ...TWO_STEPS, '0003_broken.sql': '-- Up Migration\nCREATE TABLE broken (;\n' });
    await assert.rejects(runMigrations({ databaseUrl: url, dir, log: () => {} }), /syntax error/);
    const tables = await query(url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'applied_log'");
    assert.equal(tables.length, 0);
  });
});

describe('migrateDatabase', () => {
  test('creates the database and migrates it in one step', async () => {
    const url = freshUrl();
    const dir = await migrationsDir(TWO_STEPS);
    assert.deepEqual(await migrateDatabase({ databaseUrl: url, dir }), {
      createdDatabase: true,
      applied: ['0001_log', '0002_more'],
    });
  });

  test('gives up after waitMs when PostgreSQL cannot be reached', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const dir = await migrationsDir(TWO_STEPS);
    const messages: string[] = [];
    const started = performance.now();
    await assert.rejects(
      migrateDatabase({
        databaseUrl: `postgres://postgres@127.0.0.1:${port}/nowhere`,
        dir,
        waitMs: 800,
        log: (m) => messages.push(m),
      }),
      /ECONNREFUSED/,
    );
    assert.ok(performance.now() - started < 3000);
    assert.ok(messages.some((m) => m.startsWith('PostgreSQL is not reachable yet')));
  });

  test('fails at once on errors that waiting cannot fix', async () => {
    const url = withDatabase(SERVER_URL, 'postgres').replace('postgres@', 'no_such_role_here@');
    const dir = await migrationsDir(TWO_STEPS);
    const started = performance.now();
    await assert.rejects(migrateDatabase({ databaseUrl: url, dir, waitMs: 10_000 }), /no_such_role_here/);
    assert.ok(performance.now() - started < 2000);
  });
});
