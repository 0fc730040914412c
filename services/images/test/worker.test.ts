import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createPool } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { headers, type JetStreamClient, type NatsConnection } from 'nats';
import { buildWorker, type WorkerAppConfig } from '../src/analysis/app.ts';
import { fromSigned } from '../src/analysis/dhash.ts';
import { FORGET_BATCH, forgetProcessedTask } from '../src/analysis/forget.ts';
import { analyseBytes, PACKED_BYTES } from '../src/analysis/signature.ts';
import { analysisStore } from '../src/db/analysis.ts';
import { deleteStream, ensureStream, subjectFor } from '../src/events/stream.ts';
import { uuidv7 } from '../src/ids.ts';
import { Store } from '../src/storage/store.ts';
import type { TestDatabase } from './helpers/database.ts';
import {
  type EventsApp,
  type EventsBed,
  NATS_URL,
  openEventsBed,
  silentLog,
  testStream,
  waitFor,
} from './helpers/events.ts';
import { scene } from './helpers/pictures.ts';
import { freePort } from './helpers/process.ts';

const WORKER = fileURLToPath(new URL('../src/worker.ts', import.meta.url));
const MAX_PIXELS = 4_000_000;
const stream = testStream();

let bed: EventsBed;
let db: TestDatabase;
let dir: EventsBed['dir'];
let nc: NatsConnection;
let js: JetStreamClient;
// uploads only: its events stay in the outbox, the tests publish their own
let ctx: EventsApp;
const workers: FastifyInstance[] = [];

before(async () => {
  bed = await openEventsBed(stream, undefined, { MAX_PIXELS });
  ({ db, dir, nc, ctx } = bed);
  js = nc.jetstream();
  await ensureStream(nc, stream);
});

after(async () => {
  await closeWorkers();
  await bed?.close();
});

function workerConfig(consumer: string, overrides: Partial<WorkerAppConfig> = {}): WorkerAppConfig {
  return {
    LOG_LEVEL: 'silent',
    NATS_URL,
    EVENTS_STREAM: stream.name,
    EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
    WORKER_CONSUMER: consumer,
    WORKER_MAX_DELIVER: 3,
    WORKER_ACK_WAIT_MS: 5000,
    WORKER_RETRY_DELAY_MS: 50,
    WORKER_FORGET_INTERVAL_MS: 0,
    WORKER_CATCH_UP_INTERVAL_MS: 0,
    WORKER_CATCH_UP_AFTER_MS: 600_000,
    WORKER_CONCURRENCY: 2,
    WORKER_BATCH: 16,
    MAX_PIXELS,
    ...overrides,
  };
}

/** Each test starts from an empty stream, so a new consumer (which reads from the start) sees only its own events. */
async function emptyStream(): Promise<void> {
  await (await nc.jetstreamManager()).streams.purge(stream.name);
}

/** Closes the workers a test started, passed or failed, so none goes on consuming into the next test. */
async function closeWorkers(): Promise<void> {
  for (const worker of workers.splice(0)) await worker.close();
}

/** A worker in this process on the test database and folder, consuming once ready. */
async function startWorker(consumer: string, overrides: Partial<WorkerAppConfig> = {}) {
  const pool = createPool({ connectionString: db.url, applicationName: 'berth-worker-test', max: 4 });
  const app = buildWorker(workerConfig(consumer, overrides), { pool, store: new Store(dir.path) });
  workers.push(app);
  await app.ready();
  const ready = await waitFor(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200);
  assert.ok(ready, (await app.inject({ method: 'GET', url: '/readyz' })).body);
  return app;
}

interface Uploaded {
  id: string;
  dataset: string;
  sha256: string;
}

async function upload(bytes: Buffer, dataset: string): Promise<Uploaded> {
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/images?dataset=${dataset}`,
    payload: bytes,
    headers: { 'content-type': 'image/png' },
  });
  assert.equal(response.statusCode, 201, response.body);
  return response.json();
}

/** Publishes a created event as the relay would; `msgId` other than the event id stands for a republish JetStream cannot drop. */
async function publish(image: Uploaded, id = uuidv7(), msgId = id): Promise<string> {
  const h = headers();
  h.set('Nats-Msg-Id', msgId);
  const body = { id, type: 'created', occurredAt: new Date().toISOString(), dataset: image.dataset, imageId: image.id };
  await js.publish(subjectFor(stream.subjectPrefix, 'created', image.dataset), JSON.stringify({ ...body, image }), {
    headers: h,
  });
  return id;
}

/** An image row whose stored file is not an image at all, as a damaged disk could leave one. */
async function storeGarbage(text: string, dataset: string): Promise<Uploaded> {
  const garbage = Buffer.from(text);
  const sha256 = createHash('sha256').update(garbage).digest('hex');
  await mkdir(dirname(ctx.store.path(sha256)), { recursive: true });
  await writeFile(ctx.store.path(sha256), garbage);
  const id = uuidv7();
  await db.query(
    `INSERT INTO images (id, sha256, dataset, format, width, height, channels, bytes)
     VALUES ($1, $2, $3, 'png', 10, 10, 3, $4)`,
    [id, sha256, dataset, garbage.length],
  );
  return { id, dataset, sha256 };
}

async function analysis(id: string) {
  const [row] = await db.query<{ phash: string | null; analysis_status: string | null; analysed_at: Date | null }>(
    'SELECT phash, analysis_status, analysed_at FROM images WHERE id = $1',
    [id],
  );
  assert.ok(row);
  return row;
}

/** A counter's value from the worker's /metrics (0 when it has no sample yet). */
async function metric(app: FastifyInstance, name: string, label = ''): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(label) && !l.startsWith('#'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

async function consumerInfo(name: string) {
  return (await nc.jetstreamManager()).consumers.info(stream.name, name);
}

test('a created event puts the hash and the signature on the row; a second copy of it changes nothing', async (t) => {
  await emptyStream();
  t.after(closeWorkers);
  const worker = await startWorker('effects');
  const picture = await scene(61);
  const image = await upload(picture, 'events');
  const event = await publish(image);
  assert.ok(await waitFor(async () => (await analysis(image.id)).analysis_status === 'done'));
  const first = await analysis(image.id);
  assert.equal(fromSigned(first.phash as string), (await analyseBytes(picture, MAX_PIXELS)).hash);
  const [signed] = await ctx.pool
    .query<{ bytes: number }>('SELECT length(signature) AS bytes FROM image_signatures WHERE image_id = $1', [image.id])
    .then((result) => result.rows);
  assert.equal(signed?.bytes, PACKED_BYTES);
  assert.equal(await metric(worker, 'images_worker_messages_processed_total', 'result="applied"'), 1);

  // the same event again under another message id, as after the duplicate window: acked, not applied
  await publish(image, event, uuidv7());
  assert.ok(
    await waitFor(async () => (await metric(worker, 'images_worker_messages_processed_total', 'duplicate')) === 1),
  );
  assert.deepEqual((await analysis(image.id)).analysed_at, first.analysed_at);
  const info = await consumerInfo('effects');
  assert.equal(info.num_ack_pending, 0);
  assert.equal(info.num_pending, 0);
  assert.equal(await metric(worker, 'images_worker_consumer_pending'), 0);
  assert.match(
    (await worker.inject({ method: 'GET', url: '/metrics' })).body,
    /images_worker_processing_seconds_bucket/,
  );
});

test('a corrupt file is recorded as failed and its message acked; a body that is not an event is dropped', async (t) => {
  await emptyStream();
  t.after(closeWorkers);
  const worker = await startWorker('corrupt');
  const rotten = await storeGarbage('not an image, whatever its row says', 'rotten');
  const id = rotten.id;
  await publish(rotten);
  await js.publish(subjectFor(stream.subjectPrefix, 'created', 'rotten'), 'this is not JSON');
  assert.ok(await waitFor(async () => (await analysis(id)).analysis_status === 'failed'));
  assert.ok(await waitFor(async () => (await metric(worker, 'images_worker_messages_failed_total', 'invalid')) === 1));
  assert.ok(
    await waitFor(async () => (await consumerInfo('corrupt')).num_ack_pending === 0),
    JSON.stringify(await consumerInfo('corrupt')),
  );
  const info = await consumerInfo('corrupt');
  assert.equal(info.num_pending, 0);
  assert.equal(info.num_redelivered, 0);
  assert.equal(await metric(worker, 'images_worker_messages_processed_total', 'undecodable'), 1);
  assert.equal(await metric(worker, 'images_worker_messages_redelivered_total'), 0);
});

test('a burst of events is handled in batches: every event applied once, a corrupt image among them failed alone', async (t) => {
  await emptyStream();
  t.after(closeWorkers);
  // published before the worker starts, so it finds them waiting and takes them 16 at a time
  const images: Uploaded[] = [];
  for (let i = 0; i < 40; i++) images.push(await upload(await scene(400 + i, 32, 24), 'burst'));
  const broken = await storeGarbage('a burst member that is no image', 'burst');
  for (const [i, image] of images.entries()) {
    await publish(image);
    if (i === 20) await publish(broken);
  }
  // the same event twice in the stream (a republish): applied once
  const again = images[3] as Uploaded;
  const repeated = await publish(again);
  await publish(again, repeated, uuidv7());
  const worker = await startWorker('burst', { WORKER_BATCH: 16 });
  assert.ok(
    await waitFor(async () => (await metric(worker, 'images_worker_messages_processed_total', 'applied')) === 41),
    (await worker.inject({ method: 'GET', url: '/metrics' })).body,
  );
  assert.ok(await waitFor(async () => (await consumerInfo('burst')).num_ack_pending === 0));
  assert.equal(await metric(worker, 'images_worker_messages_processed_total', 'undecodable'), 1);
  assert.equal(await metric(worker, 'images_worker_messages_processed_total', 'duplicate'), 1);
  const rows = await db.query<{ status: string; n: number }>(
    "SELECT analysis_status AS status, count(*)::int AS n FROM images WHERE dataset = 'burst' GROUP BY 1 ORDER BY 1",
  );
  assert.deepEqual(rows, [
    { status: 'done', n: 40 },
    { status: 'failed', n: 1 },
  ]);
  assert.equal((await consumerInfo('burst')).num_redelivered, 0);
  // 43 events in batches of at most 16
  assert.equal(await metric(worker, 'images_worker_batch_events_sum'), 43);
  const batches = await metric(worker, 'images_worker_batch_events_count');
  assert.ok(batches >= 3 && batches <= 8, `${batches} batches`);
  assert.equal(await metric(worker, 'images_worker_batch_events_bucket', 'le="16"'), batches);
});

test('two workers sharing the consumer apply each event once between them', async (t) => {
  await emptyStream();
  t.after(closeWorkers);
  const images: Uploaded[] = [];
  for (let i = 0; i < 16; i++) images.push(await upload(await scene(200 + i, 64, 48), 'shared'));
  const one = await startWorker('shared', { WORKER_CONCURRENCY: 1 });
  const two = await startWorker('shared', { WORKER_CONCURRENCY: 1 });
  for (const image of images) await publish(image);
  const done = async () => {
    const [row] = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM images WHERE dataset = 'shared' AND analysis_status = 'done'",
    );
    return row?.n === images.length;
  };
  assert.ok(await waitFor(done, 30_000));
  const byOne = await metric(one, 'images_worker_messages_processed_total', 'applied');
  const byTwo = await metric(two, 'images_worker_messages_processed_total', 'applied');
  assert.equal(byOne + byTwo, images.length, `applied ${byOne} + ${byTwo}`);
  const [marks] = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM processed_events WHERE consumer = 'shared'",
  );
  assert.equal(marks?.n, images.length);
});

/** Marks of applied events, dated `agoMs` back, with an outbox row for each `outbox` that is not 'none'. */
async function addMarks(consumer: string, marks: Array<{ agoMs: number; outbox: 'none' | 'sent' | 'unsent' }>) {
  const ids = marks.map(() => uuidv7());
  await db.query(
    `INSERT INTO processed_events (consumer, event_id, processed_at)
     SELECT $1, id, now() - make_interval(secs => ago / 1000) FROM unnest($2::uuid[], $3::float8[]) AS m(id, ago)`,
    [consumer, ids, marks.map((mark) => mark.agoMs)],
  );
  const events = marks.flatMap((mark, i) =>
    mark.outbox === 'none' ? [] : [{ id: ids[i], sent: mark.outbox === 'sent' }],
  );
  await db.query(
    `INSERT INTO outbox (id, type, image_id, dataset, payload, sent_at)
     SELECT id, 'created', id, 'forget', '{}', CASE WHEN sent THEN now() END FROM unnest($1::uuid[], $2::bool[]) AS e(id, sent)`,
    [events.map((event) => event.id), events.map((event) => event.sent)],
  );
  return ids;
}

async function marksOf(consumer: string): Promise<string[]> {
  const rows = await db.query<{ event_id: string }>(
    'SELECT event_id FROM processed_events WHERE consumer = $1 ORDER BY event_id',
    [consumer],
  );
  return rows.map((row) => row.event_id);
}

test('the worker removes marks of events the stream no longer holds and keeps those that may still come', async (t) => {
  await emptyStream();
  t.after(closeWorkers);
  const hour = 3600_000;
  assert.equal(stream.maxAgeMs, hour, 'the test stream keeps messages an hour');
  const [expired, sentExpired, unsentExpired, recent] = await addMarks('forgetting', [
    { agoMs: 2 * hour, outbox: 'none' },
    { agoMs: 2 * hour, outbox: 'sent' },
    { agoMs: 2 * hour, outbox: 'unsent' },
    { agoMs: hour / 2, outbox: 'sent' },
  ]);
  // another consumer's marks are its own business
  const [otherConsumer] = await addMarks('forgetting-other', [{ agoMs: 2 * hour, outbox: 'none' }]);
  assert.ok(expired && sentExpired && unsentExpired && recent && otherConsumer);
  await startWorker('forgetting', { WORKER_FORGET_INTERVAL_MS: 100 });
  assert.ok(await waitFor(async () => (await marksOf('forgetting')).length === 2, 10_000));
  assert.deepEqual(await marksOf('forgetting'), [unsentExpired, recent].sort());
  assert.deepEqual(await marksOf('forgetting-other'), [otherConsumer]);
});

test('marks are kept whatever their age when the stream has no maximum age, and removed in batches otherwise', async (t) => {
  const forever = { ...testStream(), maxAgeMs: 0 };
  await ensureStream(nc, forever);
  t.after(() => deleteStream(nc, forever.name));
  const day = 24 * 3600_000;
  await addMarks(
    'forgetting-batches',
    Array.from({ length: FORGET_BATCH + 3 }, () => ({ agoMs: day, outbox: 'none' as const })),
  );
  const store = analysisStore(ctx.pool);
  const client = { connection: nc };
  const options = { consumer: 'forgetting-batches', everyMs: 1000 };
  const kept = await forgetProcessedTask(store, client, { ...options, stream: forever.name }, silentLog).run();
  assert.equal(kept, 0);
  assert.equal((await marksOf('forgetting-batches')).length, FORGET_BATCH + 3);
  const removed = await forgetProcessedTask(store, client, { ...options, stream: stream.name }, silentLog).run();
  assert.equal(removed, FORGET_BATCH + 3);
  assert.deepEqual(await marksOf('forgetting-batches'), []);
});

test('an image whose created event never came is analysed by the catch-up, and the event arriving later changes nothing', async (t) => {
  await emptyStream();
  t.after(closeWorkers);
  // uploads here leave their created events unsent in the outbox
  const waiting = await upload(await scene(300, 64, 48), 'stranded');
  const stranded = await upload(await scene(301, 64, 48), 'stranded');
  const young = await upload(await scene(302, 64, 48), 'stranded');
  // the relay sent two of those events and the worker never got them; two of the images are old
  await db.query('UPDATE outbox SET sent_at = now() WHERE image_id = ANY($1::uuid[])', [[stranded.id, young.id]]);
  await db.query("UPDATE images SET created_at = now() - interval '1 hour' WHERE id = ANY($1::uuid[])", [
    [waiting.id, stranded.id],
  ]);
  const worker = await startWorker('catching-up', {
    WORKER_CATCH_UP_INTERVAL_MS: 100,
    WORKER_CATCH_UP_AFTER_MS: 60_000,
  });
  assert.ok(await waitFor(async () => (await analysis(stranded.id)).analysis_status === 'done', 10_000));
  assert.equal(await metric(worker, 'images_worker_caught_up_total', 'applied'), 1);
  // more runs go by: the image whose event is still to be sent and the young one are left to their events
  await sleep(600);
  assert.equal((await analysis(waiting.id)).analysis_status, null);
  assert.equal((await analysis(young.id)).analysis_status, null);
  assert.equal(await metric(worker, 'images_worker_caught_up_total', 'applied'), 1);
  // the created event turning up after all (its id is the image's) finds the effect applied
  await publish(stranded, stranded.id);
  assert.ok(
    await waitFor(async () => (await metric(worker, 'images_worker_messages_processed_total', 'duplicate')) === 1),
  );
  const marks = await db.query<{ event_id: string }>(
    "SELECT event_id FROM processed_events WHERE consumer = 'catching-up'",
  );
  assert.deepEqual(
    marks.map((mark) => mark.event_id),
    [stranded.id],
  );
});

/** `node src/worker.ts` as compose runs it. */
async function spawnWorker(consumer: string): Promise<{ child: ChildProcess; output: () => string; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [WORKER], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      DATABASE_URL: db.url,
      IMAGES_DIR: dir.path,
      NATS_URL,
      EVENTS_STREAM: stream.name,
      EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
      WORKER_CONSUMER: consumer,
      WORKER_CONCURRENCY: '2',
      // long enough that nothing is redelivered for a slow decode on a busy machine: a duplicate
      // seen by the next worker can then only be an effect committed but not acknowledged
      WORKER_ACK_WAIT_MS: '20000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const ready = await waitFor(async () => {
    if (child.exitCode !== null) return true;
    return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok === true;
  }, 30_000);
  assert.ok(ready && child.exitCode === null, `the worker did not get ready:\n${output}`);
  return { child, output: () => output, url };
}

test('on SIGTERM the worker process stops pulling, finishes and acks what it holds, and exits 0; the rest is left for the next', async (t) => {
  await emptyStream();
  t.after(closeWorkers);
  const images: Uploaded[] = [];
  for (let i = 0; i < 24; i++) images.push(await upload(await scene(300 + i, 480, 360), 'drain'));
  const worker = await spawnWorker('drain');
  t.after(() => {
    if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
  });
  for (const image of images) await publish(image);
  const analysed = async () => {
    const [row] = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM images WHERE dataset = 'drain' AND analysis_status IS NOT NULL",
    );
    return row?.n ?? 0;
  };
  assert.ok(await waitFor(async () => (await analysed()) > 0, 30_000));
  const exited = once(worker.child, 'exit');
  worker.child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0, worker.output());
  assert.match(worker.output(), /shutting down/);
  // what the stopped worker finished is recorded, with the time of its effect
  const [marks] = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM processed_events WHERE consumer = 'drain'",
  );
  assert.equal(marks?.n, await analysed());
  const before = await db.query<{ id: string; analysed_at: Date }>(
    "SELECT id, analysed_at FROM images WHERE dataset = 'drain' AND analysis_status IS NOT NULL ORDER BY id",
  );

  await startWorker('drain', { WORKER_ACK_WAIT_MS: 20_000 });
  // a message on its way to the stopped worker as it unsubscribed comes back after the ack wait
  assert.ok(await waitFor(async () => (await analysed()) === images.length, 90_000));
  // a copy delivered again (at least once) finds its effect done and leaves it as it was
  const afterwards = await db.query<{ id: string; analysed_at: Date }>(
    'SELECT id, analysed_at FROM images WHERE id = ANY($1::uuid[]) ORDER BY id',
    [before.map((row) => row.id)],
  );
  assert.deepEqual(afterwards, before);
  const [all] = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM processed_events WHERE consumer = 'drain'",
  );
  assert.equal(all?.n, images.length);
});
