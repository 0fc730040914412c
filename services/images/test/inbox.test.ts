import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, chmod, mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool } from '@berth/service-kit';
import Fastify from 'fastify';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { Inbox, type InboxOptions } from '../src/inbox/inbox.ts';
import { inboxSettings } from '../src/inbox/settings.ts';
import { prepareDatabase } from '../src/setup.ts';
import { Store } from '../src/storage/store.ts';
import { tempDir, testApp } from './helpers/app.ts';
import { privateServer } from './helpers/cluster.ts';
import { createTestDatabase, queryOnce, type TestDatabase } from './helpers/database.ts';
import { numberedPng, solidImage } from './helpers/images.ts';
import { freePort } from './helpers/process.ts';

const log = Fastify({ logger: { level: 'silent' } }).log;

let db: TestDatabase;
let imagesDir: Awaited<ReturnType<typeof tempDir>>;
let store: Store;
let pool: pg.Pool;
const pools: pg.Pool[] = [];
const temps: Awaited<ReturnType<typeof tempDir>>[] = [];
let inboxes = 0;

function newPool(url: string): pg.Pool {
  const created = createPool({
    connectionString: url,
    applicationName: 'berth-images-inbox-test',
    max: 8,
    connectTimeoutMs: 1000,
    statementTimeoutMs: 5000,
  });
  pools.push(created);
  return created;
}

before(async () => {
  db = await createTestDatabase();
  imagesDir = await tempDir();
  store = new Store(imagesDir.path);
  await store.init();
  pool = newPool(db.url);
});

after(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await db?.drop();
  await imagesDir?.remove();
  await Promise.all(temps.map((t) => t.remove()));
});

/** A fresh inbox folder for one test. */
async function inboxDir(): Promise<string> {
  const dir = await tempDir('berth-inbox-');
  temps.push(dir);
  return dir.path;
}

function inbox(dir: string, options: Partial<InboxOptions> = {}, on: pg.Pool = pool, logger = log) {
  const registry = new Registry();
  const created = new Inbox(
    on,
    store,
    {
      dir,
      settleMs: 0,
      claimTimeoutMs: 60_000,
      maxFiles: 100,
      concurrency: 4,
      maxBytes: 1024 * 1024,
      maxPixels: 4_000_000,
      replicaId: `replica-${++inboxes}`,
      ...options,
    },
    registry,
    logger,
  );
  return { inbox: created, registry };
}

/** The images app with its inbox on `dir`, scanned every 100 ms, files taken at first sight. */
function scanningApp(dir: string) {
  return testApp(db.url, imagesDir.path, { INBOX_DIR: dir, INBOX_SCAN_INTERVAL: '100ms', INBOX_SETTLE: '0' });
}

async function put(dir: string, rel: string, bytes: Buffer | string): Promise<void> {
  await mkdir(dirname(join(dir, rel)), { recursive: true });
  await writeFile(join(dir, rel), bytes);
}

/** Every file under the folder, as sorted relative paths. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function rowsIn(dataset: string) {
  return db.query<{ label: string; split: string | null; sha256: string; filename: string }>(
    'SELECT label, split, sha256, original_name AS filename FROM images WHERE dataset = $1 ORDER BY original_name',
    [dataset],
  );
}

async function counted(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('images_inbox_files_total')?.get();
  return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.outcome), v.value]));
}

test('files are stored with the data set, split and label their path names, then moved to .done under the same path', async () => {
  const dir = await inboxDir();
  const cat = await numberedPng(1);
  const dog = await numberedPng(2);
  await put(dir, 'pets/cat/one.png', cat);
  await put(dir, 'pets/train/dog/two.png', dog);
  await put(dir, 'pets/validation/dog/three.png', await numberedPng(3));
  const { inbox: scanner, registry } = inbox(dir);

  const report = await scanner.scan();

  assert.equal(report.created, 3);
  const rows = await rowsIn('pets');
  assert.deepEqual(
    rows.map((r) => [r.filename, r.label, r.split]),
    [
      ['one.png', 'cat', null],
      ['three.png', 'dog', 'val'],
      ['two.png', 'dog', 'train'],
    ],
  );
  assert.equal(rows.find((r) => r.filename === 'one.png')?.sha256, sha256(cat));
  assert.equal(await store.has(sha256(dog)), true, 'the bytes are in the store');
  assert.deepEqual(await files(dir), [
    '.claimed/replica-1/.heartbeat',
    '.done/pets/cat/one.png',
    '.done/pets/train/dog/two.png',
    '.done/pets/validation/dog/three.png',
  ]);
  assert.deepEqual(await counted(registry), { created: 3, duplicate: 0, failed: 0, released: 0 });
  const events = await db.query<{ type: string; n: number }>(
    "SELECT type, count(*)::int AS n FROM outbox WHERE dataset = 'pets' GROUP BY type",
  );
  assert.deepEqual(events, [{ type: 'created', n: 3 }], 'one created event per stored file, as for uploads');

  // the same bytes again under the same name: a duplicate, and the earlier .done file is kept
  await put(dir, 'pets/cat/one.png', cat);
  const again = await scanner.scan();
  assert.equal(again.duplicates, 1);
  assert.equal((await rowsIn('pets')).length, 3);
  const [all] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE dataset = 'pets'");
  assert.equal(all?.n, 3, 'a duplicate writes no event');
  assert.deepEqual((await files(join(dir, '.done', 'pets', 'cat'))).sort(), ['one.png', 'one~2.png']);
  assert.deepEqual(await readFile(join(dir, '.done/pets/cat/one~2.png')), cat);
  assert.deepEqual(await counted(registry), { created: 3, duplicate: 1, failed: 0, released: 0 });
  await scanner.close();
  assert.deepEqual(await readdir(join(dir, '.claimed')), [], 'the claim folder goes at shutdown');
});

test('a file that is not an image, too large, too many pixels or in a bad place goes to .failed with a file that says why', async () => {
  const dir = await inboxDir();
  await put(dir, 'docs/notes/readme.png', 'just some text');
  await put(dir, 'docs/big/huge.png', Buffer.alloc(8192, 1));
  await put(dir, 'docs/wide/wide.png', await solidImage({ width: 300, height: 300 }));
  await put(dir, 'Bad Name/cat/x.png', await numberedPng(10));
  await put(dir, 'docs/nolabel.png', await numberedPng(11));
  await put(dir, 'docs/holiday/cat/x.png', await numberedPng(12));
  // left alone: a dot-file and files still being downloaded
  await put(dir, 'docs/cat/.hidden.png', await numberedPng(13));
  await put(dir, 'docs/cat/coming.png.part', 'half');
  await put(dir, 'docs/cat/coming.png.tmp', 'half');
  const { inbox: scanner, registry } = inbox(dir, { maxBytes: 4096, maxPixels: 10_000 });

  const report = await scanner.scan();

  assert.equal(report.failed, 6);
  assert.equal(report.created, 0);
  assert.deepEqual(await rowsIn('docs'), []);
  const reason = async (rel: string) => JSON.parse(await readFile(join(dir, '.failed', `${rel}.error.json`), 'utf8'));
  assert.match((await reason('docs/notes/readme.png')).reason, /The content is not an image/);
  assert.equal((await reason('docs/notes/readme.png')).statusCode, 415);
  assert.match(
    (await reason('docs/big/huge.png')).reason,
    /8192 bytes, more than the limit of 4096 bytes \(MAX_UPLOAD_BYTES\)/,
  );
  assert.match((await reason('docs/wide/wide.png')).reason, /more pixels than the limit of 10000 \(MAX_PIXELS\)/);
  assert.match((await reason('Bad Name/cat/x.png')).reason, /Data set name "Bad Name" is not valid/);
  assert.match((await reason('docs/nolabel.png')).reason, /is not in a label folder/);
  assert.match((await reason('docs/holiday/cat/x.png')).reason, /Folder "holiday" is not a split/);
  assert.deepEqual(await files(join(dir, 'docs')), ['cat/.hidden.png', 'cat/coming.png.part', 'cat/coming.png.tmp']);
  assert.equal((await files(join(dir, '.failed'))).length, 12, 'six files and six reasons');
  assert.deepEqual(await counted(registry), { created: 0, duplicate: 0, failed: 6, released: 0 });
});

test('a file still being written is left alone until its size and time have settled', async () => {
  const dir = await inboxDir();
  const full = await solidImage({ width: 64, height: 64, color: '#aa3300' });
  const rel = 'growing/cat/slow.png';
  await put(dir, rel, full.subarray(0, 40));
  const settleMs = 300;
  const { inbox: scanner } = inbox(dir, { settleMs });

  const first = await scanner.scan();
  assert.deepEqual([first.created, first.failed, first.waiting], [0, 0, 1], 'first sight: only noted');

  await sleep(settleMs + 50);
  await appendFile(join(dir, rel), full.subarray(40));
  const second = await scanner.scan();
  assert.deepEqual([second.created, second.failed, second.waiting], [0, 0, 1], 'it grew since the last look');
  assert.deepEqual(await files(join(dir, 'growing')), ['cat/slow.png']);

  await sleep(settleMs + 50);
  const third = await scanner.scan();
  assert.deepEqual([third.created, third.failed, third.waiting], [1, 0, 0]);
  const [row] = await rowsIn('growing');
  assert.equal(row?.sha256, sha256(full), 'the whole file was stored, not the part first seen');
});

test('two scanners on one inbox at once store each file exactly once and move every file', async () => {
  const dir = await inboxDir();
  const count = 40;
  for (let i = 0; i < count; i++) await put(dir, `race/label${i % 4}/f${i}.png`, await numberedPng(1000 + i));
  const a = inbox(dir, { concurrency: 3 });
  const b = inbox(dir, { concurrency: 3 });

  const [ra, rb] = await Promise.all([a.inbox.scan(), b.inbox.scan()]);

  assert.equal(ra.created + rb.created, count, `a stored ${ra.created}, b stored ${rb.created}`);
  assert.equal(ra.duplicates + rb.duplicates, 0, 'no file was taken twice');
  assert.equal(ra.failed + rb.failed + ra.released + rb.released, 0);
  const rows = await rowsIn('race');
  assert.equal(rows.length, count);
  assert.equal(new Set(rows.map((r) => r.sha256)).size, count);
  const done = await files(join(dir, '.done'));
  assert.equal(done.length, count);
  assert.ok(
    done.every((name) => !name.includes('~')),
    'no file reached .done twice',
  );
  assert.deepEqual(await files(join(dir, 'race')), []);
  await a.inbox.close();
  await b.inbox.close();
});

test('with PostgreSQL unreachable the files stay in the inbox, and the next scan stores them', async () => {
  const dir = await inboxDir();
  await put(dir, 'outage/cat/a.png', await numberedPng(2001));
  await put(dir, 'outage/cat/b.png', await numberedPng(2002));
  await put(dir, 'outage/dog/c.png', await numberedPng(2003));
  const closed = newPool(`postgres://postgres@127.0.0.1:${await freePort()}/nothing`);
  const down = inbox(dir, { concurrency: 1 }, closed);

  const report = await down.inbox.scan();

  assert.equal(report.released, 1, 'the first failure ends the scan; the rest are not even claimed');
  assert.equal(report.created + report.failed, 0);
  assert.deepEqual(await files(join(dir, 'outage')), ['cat/a.png', 'cat/b.png', 'dog/c.png']);
  assert.deepEqual(await files(join(dir, '.claimed')), [`replica-${inboxes}/.heartbeat`]);
  assert.deepEqual(await files(join(dir, '.failed')), []);
  assert.deepEqual(await counted(down.registry), { created: 0, duplicate: 0, failed: 0, released: 1 });
  await down.inbox.close();

  const up = inbox(dir);
  assert.equal((await up.inbox.scan()).created, 3);
  assert.equal((await rowsIn('outage')).length, 3);
  assert.deepEqual(await files(join(dir, 'outage')), []);
});

test('the same scanner stores the files it put back once its PostgreSQL server is started again', async () => {
  const server = await privateServer();
  try {
    await prepareDatabase(server.url('images'));
    const dir = await inboxDir();
    const { inbox: scanner } = inbox(dir, {}, newPool(server.url('images')));
    await put(dir, 'restart/cat/before.png', await numberedPng(2101));
    assert.equal((await scanner.scan()).created, 1);

    await server.stop();
    await put(dir, 'restart/cat/during.png', await numberedPng(2102));
    const down = await scanner.scan();
    assert.deepEqual([down.created, down.released, down.failed], [0, 1, 0]);
    assert.deepEqual(await files(join(dir, 'restart')), ['cat/during.png']);

    await server.start();
    assert.equal((await scanner.scan()).created, 1);
    const rows = await queryOnce<{ n: number }>(server.url('images'), 'SELECT count(*)::int AS n FROM images');
    assert.equal(rows[0]?.n, 2);
    assert.deepEqual(await files(join(dir, '.done')), ['restart/cat/before.png', 'restart/cat/during.png']);
    await scanner.close();
  } finally {
    await server.destroy();
  }
});

test('claims of a replica that stopped beating are given back and stored; a live replica keeps its own', async () => {
  const dir = await inboxDir();
  const lost = await numberedPng(3001);
  await put(dir, '.claimed/dead-1/stale/cat/lost.png', lost);
  await put(dir, '.claimed/dead-1/.heartbeat', 'x');
  const old = new Date(Date.now() - 120_000);
  await utimes(join(dir, '.claimed/dead-1/.heartbeat'), old, old);
  await put(dir, '.claimed/alive-1/stale/cat/busy.png', await numberedPng(3002));
  await put(dir, '.claimed/alive-1/.heartbeat', 'x');
  const { inbox: scanner } = inbox(dir, { claimTimeoutMs: 60_000 });

  const report = await scanner.scan();

  assert.equal(report.recovered, 1);
  assert.equal(report.created, 1);
  assert.deepEqual(
    (await rowsIn('stale')).map((r) => r.sha256),
    [sha256(lost)],
  );
  const claimed = await readdir(join(dir, '.claimed'));
  assert.ok(!claimed.includes('dead-1'), 'the dead replica folder is gone');
  assert.deepEqual(await files(join(dir, '.claimed/alive-1')), ['.heartbeat', 'stale/cat/busy.png']);
  assert.deepEqual(await files(join(dir, '.done')), ['stale/cat/lost.png']);
});

test('the service scans INBOX_DIR on its schedule and counts what it stored in /metrics', async () => {
  const dir = await inboxDir();
  await put(dir, 'scheduled/cat/a.png', await numberedPng(4001));
  await put(dir, 'scheduled/cat/b.txt', 'not an image');
  const { app } = await scanningApp(dir);
  try {
    const deadline = Date.now() + 15_000;
    const handled = async () => (await files(join(dir, '.done'))).length + (await files(join(dir, '.failed'))).length;
    while ((await handled()) < 3 && Date.now() < deadline) await sleep(50);
    assert.deepEqual(await files(join(dir, '.done')), ['scheduled/cat/a.png']);
    assert.deepEqual(await files(join(dir, '.failed')), ['scheduled/cat/b.txt', 'scheduled/cat/b.txt.error.json']);
    const metrics = (await app.inject('/metrics')).body;
    assert.match(metrics, /images_inbox_files_total\{outcome="created",service="images"\} 1/);
    assert.match(metrics, /images_inbox_files_total\{outcome="failed",service="images"\} 1/);
  } finally {
    await app.close();
  }
});

/**
 * Makes the kernel refuse to move files out of `dir`, as for files copied in by root with
 * `docker cp`: without write permission (EACCES) for a normal user; as root, who passes permission
 * checks, with the immutable attribute (EPERM). Returns the undo.
 */
async function refuseMoves(dir: string): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) {
    await chmod(dir, 0o555);
    return () => chmod(dir, 0o755);
  }
  execFileSync('chattr', ['+i', dir]);
  return async () => {
    execFileSync('chattr', ['-i', dir]);
  };
}

/** A logger at info level whose lines (parsed) land in `lines`. */
function capturingLog(lines: Array<{ level: number; msg: string; file?: string }>) {
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return Fastify({ logger: { level: 'info', stream } }).log;
}

test('a file the service cannot move out of its folder is logged once with the fix, counted and listed; the others go on', async () => {
  const dir = await inboxDir();
  const lines: Array<{ level: number; msg: string; file?: string }> = [];
  const { inbox: scanner, registry } = inbox(dir, { maxFiles: 1, concurrency: 1 }, pool, capturingLog(lines));
  // "locked" sorts first and maxFiles is 1: the file after it is still taken in
  await put(dir, 'locked/cat/a.png', await numberedPng(5001));
  await put(dir, 'open/cat/b.png', await numberedPng(5002));
  const undo = await refuseMoves(join(dir, 'locked/cat'));
  const unclaimableGauge = async () =>
    (await registry.getSingleMetric('images_inbox_unclaimable_files')?.get())?.values[0]?.value;
  try {
    for (let i = 0; i < 3; i++) await scanner.scan();
    assert.deepEqual(await files(join(dir, '.done')), ['open/cat/b.png'], 'the claimable file is not held up');
    const errors = lines.filter((line) => line.level >= 50);
    assert.equal(errors.length, 1, 'logged once over three scans');
    assert.equal(errors[0]?.file, 'locked/cat/a.png');
    assert.match(errors[0]?.msg ?? '', /^Inbox file "locked\/cat\/a\.png" cannot be taken in: .*\((EACCES|EPERM)\)/);
    assert.match(errors[0]?.msg ?? '', /docker compose exec -T images tar -xf - -C \/data\/inbox/);
    assert.equal(await unclaimableGauge(), 1);
    const { count, files: listed } = scanner.unclaimable(10);
    assert.equal(count, 1);
    assert.equal(listed[0]?.file, 'locked/cat/a.png');
    assert.equal(listed[0]?.message, errors[0]?.msg);
    assert.deepEqual(await files(join(dir, 'locked')), ['cat/a.png'], 'the file stays where it is');
  } finally {
    await undo();
  }
  await scanner.scan();
  assert.deepEqual(await files(join(dir, '.done')), ['locked/cat/a.png', 'open/cat/b.png']);
  assert.equal(await unclaimableGauge(), 0);
  assert.equal(scanner.unclaimable(10).count, 0);
  assert.equal((await rowsIn('locked')).length, 1);
});

test('GET /images/inbox lists the files the service cannot claim, and says when the inbox is off', async () => {
  const dir = await inboxDir();
  await put(dir, 'listed/dog/a.png', await numberedPng(5003));
  const undo = await refuseMoves(join(dir, 'listed/dog'));
  const { app } = await scanningApp(dir);
  try {
    const deadline = Date.now() + 15_000;
    let body = (await app.inject('/images/inbox')).json();
    while (body.unclaimable.count === 0 && Date.now() < deadline) {
      await sleep(50);
      body = (await app.inject('/images/inbox')).json();
    }
    assert.equal(body.enabled, true);
    assert.equal(body.unclaimable.count, 1);
    assert.equal(body.unclaimable.files[0].file, 'listed/dog/a.png');
    assert.match(body.unclaimable.files[0].code, /^(EACCES|EPERM)$/);
    assert.match(body.unclaimable.files[0].message, /cannot be taken in/);
    assert.match((await app.inject('/metrics')).body, /images_inbox_unclaimable_files\{service="images"\} 1/);
  } finally {
    await app.close();
    await undo();
  }
  const off = await testApp(db.url, imagesDir.path);
  try {
    assert.deepEqual((await off.app.inject('/images/inbox')).json(), {
      enabled: false,
      unclaimable: { count: 0, files: [] },
    });
  } finally {
    await off.app.close();
  }
});

test('inbox settings take durations with a unit or plain milliseconds, and a bad one names the variable', () => {
  const base = { MAX_UPLOAD_BYTES: 1024, MAX_PIXELS: 100 };
  assert.equal(inboxSettings({ ...base, INBOX_DIR: '' }), undefined, 'an empty INBOX_DIR turns the inbox off');
  const on = (extra: object) => inboxSettings({ ...base, INBOX_DIR: '/data/inbox', ...extra });
  assert.equal(on({ INBOX_SCAN_INTERVAL: '30s' })?.everyMs, 30_000);
  assert.equal(on({ INBOX_SCAN_INTERVAL: '500ms' })?.everyMs, 500);
  assert.equal(on({ INBOX_SCAN_INTERVAL: '5m' })?.everyMs, 300_000);
  assert.equal(on({ INBOX_SCAN_INTERVAL: '1500' })?.everyMs, 1500);
  assert.equal(on({ INBOX_SETTLE: '2s' })?.options.settleMs, 2000);
  assert.throws(() => on({ INBOX_SCAN_INTERVAL: 'soon' }), {
    name: 'ConfigError',
    message:
      'INBOX_SCAN_INTERVAL "soon" is not a duration; write a number with a unit (500ms, 30s, 5m, 1h, 7d) or plain milliseconds',
  });
  assert.throws(() => on({ INBOX_SCAN_INTERVAL: '10ms' }), {
    message: 'INBOX_SCAN_INTERVAL "10ms" is out of range; use 100ms to 1d',
  });
  assert.throws(() => on({ INBOX_CLAIM_TIMEOUT: '5' }), /^ConfigError: INBOX_CLAIM_TIMEOUT "5"/);
  assert.equal(on({})?.keepMs, 7 * 24 * 3600_000, 'handled files are kept a week by default');
  assert.equal(on({ INBOX_KEEP: '30d' })?.keepMs, 30 * 24 * 3600_000);
  assert.equal(on({ INBOX_KEEP: '0' })?.keepMs, 0);
  assert.throws(() => on({ INBOX_KEEP: 'forever' }), /^ConfigError: INBOX_KEEP "forever" is not a duration/);
});

test('handled files leave .done and .failed once older than INBOX_KEEP, newer ones stay, and emptied folders go', async () => {
  const dir = await inboxDir();
  await put(dir, 'kept/cat/old.png', await numberedPng(5001));
  await put(dir, 'kept/cat/old.txt', 'not an image');
  const { inbox: scanner, registry } = inbox(dir);
  assert.equal((await scanner.scan()).created, 1);
  await sleep(50);
  const between = Date.now();
  await sleep(50);
  await put(dir, 'kept/dog/new.png', await numberedPng(5002));
  assert.equal((await scanner.scan()).created, 1);
  const handled = async () => [...(await files(join(dir, '.done'))), ...(await files(join(dir, '.failed')))];
  assert.deepEqual(await handled(), [
    'kept/cat/old.png',
    'kept/dog/new.png',
    'kept/cat/old.txt',
    'kept/cat/old.txt.error.json',
  ]);

  const hour = 3600_000;
  assert.equal(await scanner.prune(hour), 0, 'nothing is an hour old yet');
  // an hour after the moment between the two scans: the first scan's files are past the hour
  assert.equal(await scanner.prune(hour, between + hour), 3);
  assert.deepEqual(await handled(), ['kept/dog/new.png']);
  assert.deepEqual(await readdir(join(dir, '.done', 'kept')), ['dog'], 'the emptied cat folder went');
  assert.deepEqual(await readdir(join(dir, '.failed')), []);
  assert.deepEqual((await rowsIn('kept')).length, 2, 'the stored images stay');
  const removed = await registry.getSingleMetric('images_inbox_removed_total')?.get();
  assert.equal(removed?.values[0]?.value, 3);
  await scanner.close();
});
