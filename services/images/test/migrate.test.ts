import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createPool, migrateDatabase, withDatabase } from '@berth/service-kit';
import { Analyser } from '../src/analysis/analyse.ts';
import { PACKED_BYTES } from '../src/analysis/signature.ts';
import { analysisStore } from '../src/db/analysis.ts';
import { MIGRATIONS_DIR, prepareDatabase } from '../src/setup.ts';
import { Store } from '../src/storage/store.ts';
import { tempDir, testApp } from './helpers/app.ts';
import { dropDatabase, queryOnce, SERVER_URL, uniqueName } from './helpers/database.ts';
import { scene } from './helpers/pictures.ts';

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
    [
      'image_hash_masks',
      'image_pairs',
      'image_signatures',
      'images',
      'import_jobs',
      'outbox',
      'processed_events',
      'schema_migrations',
    ],
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

test('images analysed before signatures are cleared by migration 0005 and analysed again by the catch-up', async () => {
  const older = withDatabase(SERVER_URL, uniqueName());
  const early = await tempDir();
  const files = await tempDir();
  try {
    // the schema as it was before signatures: migrations 0001 to 0004 only
    for (const name of (await readdir(MIGRATIONS_DIR)).filter((file) => file < '0005')) {
      await copyFile(join(MIGRATIONS_DIR, name), join(early.path, name));
    }
    await migrateDatabase({ databaseUrl: older, dir: early.path });
    const store = new Store(files.path);
    const bytes = await scene(77);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const [staged] = await store.stageMany([{ bytes, sha256 }]);
    await store.placeSynced([staged as NonNullable<typeof staged>]);
    const [image] = await queryOnce<{ id: string }>(
      older,
      `INSERT INTO images (sha256, dataset, format, width, height, channels, bytes, phash, analysis_status, analysed_at, created_at)
       VALUES ($1, 'old', 'png', 64, 48, 3, $2, 42, 'done', now(), now() - interval '1 day') RETURNING id`,
      [sha256, bytes.length],
    );
    assert.ok(image);
    await queryOnce(older, "INSERT INTO processed_events (consumer, event_id) VALUES ('old-worker', $1)", [image.id]);

    await prepareDatabase(older);
    const [cleared] = await queryOnce<{ analysis_status: string | null; marks: number }>(
      older,
      `SELECT analysis_status, (SELECT count(*)::int FROM processed_events WHERE event_id = $1) AS marks
       FROM images WHERE id = $1`,
      [image.id],
    );
    assert.deepEqual(cleared, { analysis_status: null, marks: 0 });

    const pool = createPool({ connectionString: older, max: 2, applicationName: 'migrate-test' });
    try {
      const analysis = analysisStore(pool);
      assert.deepEqual(await analysis.stranded('old-worker', 60_000, 10), [image.id]);
      const analyser = new Analyser(analysis, store, { consumer: 'old-worker', maxPixels: 4_000_000 });
      assert.equal(await analyser.apply(image.id, image.id), 'applied');
    } finally {
      await pool.end();
    }
    const [after] = await queryOnce<{ analysis_status: string; bytes: number }>(
      older,
      `SELECT analysis_status, length(s.signature) AS bytes
       FROM images i JOIN image_signatures s ON s.image_id = i.id WHERE i.id = $1`,
      [image.id],
    );
    assert.deepEqual(after, { analysis_status: 'done', bytes: PACKED_BYTES });
  } finally {
    await dropDatabase(older);
    await early.remove();
    await files.remove();
  }
});
