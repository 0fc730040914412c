import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withDatabase } from '@berth/service-kit';
import { tempDir, testApp } from './helpers/app.ts';
import { dropDatabase, queryOnce, SERVER_URL, uniqueName } from './helpers/database.ts';

const run = promisify(execFile);
const MIGRATE = fileURLToPath(new URL('../src/migrate.ts', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const url = withDatabase(SERVER_URL, uniqueName());

after(async () => {
  await dropDatabase(url);
});

test('the migrate command creates the database and the schema, and a second run finds nothing to do', async () => {
  const first = await run(process.execPath, [MIGRATE], { env: { ...process.env, DATABASE_URL: url } });
  assert.match(first.stdout, /created the database/);
  assert.match(first.stdout, /applied 0001_images/);
  const second = await run(process.execPath, [MIGRATE], { env: { ...process.env, DATABASE_URL: url } });
  assert.match(second.stdout, /schema is up to date/);
  const tables = await queryOnce<{ name: string }>(
    url,
    "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
  );
  assert.deepEqual(
    tables.map((t) => t.name),
    ['image_hash_masks', 'image_keys', 'images', 'import_jobs', 'outbox', 'processed_events', 'schema_migrations'],
  );
});

test('the database refuses names the API refuses, also from plain SQL', async () => {
  const insert = (label: string, dataset = 'ok') =>
    queryOnce(
      url,
      `INSERT INTO images (sha256, dataset, label, format, width, height, channels, bytes)
       VALUES (repeat('a', 64), $1, $2, 'png', 1, 1, 1, 1)`,
      [dataset, label],
    );
  await assert.rejects(insert('cat/../x'), /images_label_check/);
  await assert.rejects(insert('..'), /images_label_check/);
  await assert.rejects(insert('cat', 'Not OK'), /images_dataset_check/);
  await insert('a cat');
});

test('the service is not ready until the migrate step has run', async () => {
  const bare = withDatabase(SERVER_URL, uniqueName());
  await queryOnce(SERVER_URL, `CREATE DATABASE ${bare.split('/').pop()}`);
  const dir = await tempDir();
  const { app } = await testApp(bare, dir.path);
  try {
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.match(ready.json().message, /postgres is down/);
  } finally {
    await app.close();
    await dropDatabase(bare);
    await dir.remove();
  }
});

test('main.ts exits 78 naming the variable when the environment is wrong', async () => {
  await assert.rejects(
    run(process.execPath, [MAIN], { env: { ...process.env, MAX_PIXELS: 'lots' } }),
    (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 78);
      assert.match(err.stderr, /MAX_PIXELS/);
      return true;
    },
  );
});
