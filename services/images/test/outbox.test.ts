import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from 'nats';
import { type Image, insertImage, insertImages, type NewImage, updateImage } from '../src/db/images.ts';
import { withTransaction } from '../src/db/transaction.ts';
import { NatsClient } from '../src/events/nats.ts';
import { OutboxRelay, type PassResult } from '../src/events/relay.ts';
import { ensureStream } from '../src/events/stream.ts';
import { uuidv7 } from '../src/ids.ts';
import type { TestDatabase } from './helpers/database.ts';
import {
  backlog,
  type EventsApp,
  type EventsBed,
  eventsApp,
  NATS_URL,
  openEventsBed,
  readStream,
  silentLog,
  testEvents,
  testStream,
  waitFor,
} from './helpers/events.ts';
import { numberedPng } from './helpers/images.ts';

const stream = testStream();
let bed: EventsBed;
let db: TestDatabase;
let dir: EventsBed['dir'];
let nc: NatsConnection;
// an app whose events stay in the outbox (no NATS), for the write paths
let ctx: EventsApp;

before(async () => {
  bed = await openEventsBed(stream, undefined);
  ({ db, dir, nc, ctx } = bed);
});

after(async () => {
  await bed?.close();
});

interface EventRow {
  seq: string;
  id: string;
  type: string;
  image_id: string;
  dataset: string;
  payload: Image;
  sent_at: Date | null;
}

function eventsOf(imageId: string): Promise<EventRow[]> {
  return db.query<EventRow>('SELECT * FROM outbox WHERE image_id = $1 ORDER BY seq', [imageId]);
}

async function eventCount(): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  return row?.n ?? 0;
}

async function upload(n: number, dataset = 'pets', app = ctx.app) {
  return app.inject({
    method: 'POST',
    url: `/images?dataset=${dataset}&label=cat`,
    payload: await numberedPng(n),
    headers: { 'content-type': 'image/png' },
  });
}

function newImage(n: number, dataset = 'direct'): NewImage {
  return {
    id: uuidv7(),
    sha256: n.toString(16).padStart(64, '0'),
    dataset,
    label: 'x',
    split: null,
    tags: [],
    format: 'png',
    width: 1,
    height: 1,
    channels: 1,
    bytes: 10,
    filename: null,
  };
}

/** A relay on the test stream with the pool of `ctx`; settings other than batch and poll as in every test here. */
function testRelay(
  nats: NatsClient,
  options: { batch: number; pollMs: number; onPublished?: (result: PassResult) => void },
): OutboxRelay {
  return new OutboxRelay({
    pool: ctx.pool,
    nats,
    stream,
    settings: {
      batch: options.batch,
      pollMs: options.pollMs,
      publishTimeoutMs: 2000,
      retentionMs: 24 * 3600_000,
      pruneEveryMs: 3600_000,
    },
    log: silentLog,
    onPublished: options.onPublished,
  });
}

test('an upload writes one created event holding the image as served; the same bytes again write none', async () => {
  const first = await upload(1);
  assert.equal(first.statusCode, 201, first.body);
  const image = first.json();
  const rows = await eventsOf(image.id);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.type, 'created');
  assert.equal(rows[0]?.dataset, 'pets');
  assert.equal(rows[0]?.sent_at, null);
  assert.deepEqual(rows[0]?.payload, image);

  const again = await upload(1);
  assert.equal(again.statusCode, 200);
  assert.equal((await eventsOf(image.id)).length, 1, 'a duplicate upload is not a change');
});

test('PATCH writes one updated event with the new state, DELETE one deleted event with the last state', async () => {
  const image = (await upload(2)).json();
  const patched = await ctx.app.inject({ method: 'PATCH', url: `/images/${image.id}`, payload: { label: 'dog' } });
  assert.equal(patched.statusCode, 200);
  const removed = await ctx.app.inject({ method: 'DELETE', url: `/images/${image.id}` });
  assert.equal(removed.statusCode, 204);
  const rows = await eventsOf(image.id);
  assert.deepEqual(
    rows.map((r) => r.type),
    ['created', 'updated', 'deleted'],
  );
  assert.equal(rows[1]?.payload.label, 'dog');
  assert.deepEqual(rows[1]?.payload, patched.json());
  assert.deepEqual(rows[2]?.payload, patched.json(), 'the deleted event carries the last state');
  assert.equal(new Set(rows.map((r) => r.id)).size, 3);
});

test('PATCH and DELETE of an unknown image write no event', async () => {
  const before = await eventCount();
  const id = uuidv7();
  assert.equal(
    (await ctx.app.inject({ method: 'PATCH', url: `/images/${id}`, payload: { label: 'a' } })).statusCode,
    404,
  );
  assert.equal((await ctx.app.inject({ method: 'DELETE', url: `/images/${id}` })).statusCode, 404);
  assert.equal(await eventCount(), before);
});

test('a change that does not commit leaves no event: a failing insert, or a transaction that fails later', async () => {
  const before = await eventCount();
  const bad = { ...newImage(100), sha256: 'not-a-hash' };
  await assert.rejects(
    withTransaction(ctx.pool, (tx) => insertImage(tx, bad)),
    /images_sha256_check/,
  );
  await assert.rejects(
    withTransaction(ctx.pool, async (tx) => {
      await insertImage(tx, newImage(101));
      throw new Error('later step failed');
    }),
    /later step failed/,
  );
  await assert.rejects(
    withTransaction(ctx.pool, async (tx) => {
      await insertImages(tx, 'direct', [], [newImage(102), newImage(103)]);
      throw new Error('job taken over');
    }),
    /job taken over/,
  );
  assert.equal(await eventCount(), before);
});

test('a batch insert writes one created event per stored row, none for content the data set holds', async () => {
  await withTransaction(ctx.pool, (tx) => insertImages(tx, 'batch', [], [newImage(1, 'batch')]));
  const rows = [newImage(1, 'batch'), newImage(2, 'batch'), newImage(3, 'batch'), newImage(3, 'batch')];
  const stored = await withTransaction(ctx.pool, (tx) => insertImages(tx, 'batch', ['t'], rows));
  assert.equal(stored.length, 2);
  const events = await db.query<EventRow>(
    "SELECT * FROM outbox WHERE dataset = 'batch' AND type = 'created' ORDER BY seq",
  );
  assert.equal(events.length, 3);
  const latest = events.slice(1);
  assert.deepEqual(
    latest.map((e) => e.payload.sha256),
    stored,
  );
  assert.deepEqual(
    latest.map((e) => e.image_id),
    [rows[1]?.id, rows[2]?.id],
  );
  assert.deepEqual(latest[0]?.payload.tags, ['t']);
});

test('the relay publishes every event once, in order per image, with the event id as Nats-Msg-Id', async () => {
  const relayed = await eventsApp(db.url, dir.path, testEvents(stream));
  try {
    const image = (await upload(10, 'mnist.v2', relayed.app)).json();
    await relayed.app.inject({ method: 'PATCH', url: `/images/${image.id}`, payload: { split: 'test' } });
    await relayed.app.inject({ method: 'DELETE', url: `/images/${image.id}` });
    assert.ok(await waitFor(async () => (await backlog(db)) === 0), 'the outbox drained');

    const rows = await db.query<EventRow>('SELECT * FROM outbox ORDER BY seq');
    assert.ok(rows.every((r) => r.sent_at !== null));
    const stored = await readStream(nc, stream.name);
    assert.deepEqual(stored.map((m) => m.msgId).sort(), rows.map((r) => r.id).sort(), 'each event once');
    assert.ok(stored.every((m) => m.msgId === m.body.id));
    const mine = stored.filter((m) => m.body.imageId === image.id);
    assert.deepEqual(
      mine.map((m) => m.subject),
      ['created', 'updated', 'deleted'].map((type) => `${stream.subjectPrefix}.${type}.mnist~v2`),
    );
    const created = mine[0]?.body;
    assert.deepEqual(Object.keys(created ?? {}).sort(), ['dataset', 'id', 'image', 'imageId', 'occurredAt', 'type']);
    assert.equal(created?.dataset, 'mnist.v2');
    assert.deepEqual(created?.image, image);
    assert.match(created?.occurredAt ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const metrics = (await relayed.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /^outbox_backlog\{[^}]*\} 0$/m);
    assert.match(metrics, /^outbox_oldest_unsent_age_seconds\{[^}]*\} 0$/m);
    assert.match(metrics, new RegExp(`^events_published_total\\{[^}]*\\} ${rows.length}$`, 'm'));
    assert.match(metrics, /^nats_connected\{[^}]*\} 1$/m);
    const ready = (await relayed.app.inject({ url: '/readyz' })).json();
    assert.equal(ready.status, 'ready');
    assert.equal(ready.checks.nats.status, 'up');
  } finally {
    await relayed.app.close();
  }
});

test('two relays at once publish each event once and keep every image in order', async () => {
  // 40 images with 5 events each, interleaved, all unsent
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const image = await withTransaction(ctx.pool, (tx) => insertImage(tx, newImage(1000 + i, 'race')));
    ids.push((image as Image).id);
  }
  for (let round = 0; round < 4; round++) {
    for (const id of ids) {
      await withTransaction(ctx.pool, (tx) => updateImage(tx, id, { tags: [`r${round}`] }));
    }
  }
  const waiting = await backlog(db);
  assert.ok(waiting >= 200);
  const before = (await readStream(nc, stream.name)).length;

  const clients = [
    new NatsClient({ url: NATS_URL, name: 'relay-a' }, silentLog),
    new NatsClient({ url: NATS_URL, name: 'relay-b' }, silentLog),
  ];
  for (const client of clients) client.start();
  await Promise.all(clients.map((client) => client.ready()));
  await ensureStream(await (clients[0] as NatsClient).ready(), stream);
  const results: PassResult[] = [];
  const relays = clients.map((nats) =>
    testRelay(nats, { batch: 7, pollMs: 50, onPublished: (result) => results.push(result) }),
  );
  try {
    while ((await backlog(db)) > 0) await Promise.all(relays.map((relay) => relay.drain()));
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
  const published = results.reduce((sum, r) => sum + r.published, 0);
  const duplicates = results.reduce((sum, r) => sum + r.duplicates, 0);
  assert.equal(published, waiting, 'every event published');
  assert.equal(duplicates, 0, 'no event published twice');
  assert.ok(results.filter((r) => r.published > 0).length > waiting / 7, 'both relays took part in small batches');

  const stored = (await readStream(nc, stream.name)).slice(before);
  assert.equal(stored.length, waiting);
  const rows = await db.query<EventRow>("SELECT * FROM outbox WHERE dataset = 'race' ORDER BY seq");
  for (const id of ids) {
    const expected = rows.filter((r) => r.image_id === id).map((r) => r.id);
    const got = stored.filter((m) => m.body.imageId === id).map((m) => m.msgId);
    assert.deepEqual(got, expected, `image ${id} in order`);
  }
});

test('a running relay publishes the events queued behind the ones it just sent at once, without waiting for its poll', async () => {
  // three events per image, all unsent before the relay starts: each pass can take only the head
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const image = await withTransaction(ctx.pool, (tx) => insertImage(tx, newImage(2000 + i, 'chain')));
    ids.push((image as Image).id);
  }
  for (const round of ['a', 'b']) {
    for (const id of ids) await withTransaction(ctx.pool, (tx) => updateImage(tx, id, { tags: [round] }));
  }
  const nats = new NatsClient({ url: NATS_URL, name: 'relay-chain' }, silentLog);
  nats.start();
  await ensureStream(await nats.ready(), stream);
  const passes: PassResult[] = [];
  // a poll far beyond the wait below: only the relay's own follow-up passes can drain the chain
  const relay = testRelay(nats, { batch: 100, pollMs: 60_000, onPublished: (result) => passes.push(result) });
  relay.start();
  try {
    const drained = await waitFor(
      async () => (await db.query("SELECT 1 FROM outbox WHERE dataset = 'chain' AND sent_at IS NULL")).length === 0,
      5000,
    );
    assert.ok(drained, `the chain was published in passes ${JSON.stringify(passes)}`);
    assert.deepEqual(
      passes.filter((p) => p.published > 0).map((p) => [p.published, p.waiting]),
      [
        [5, true],
        [5, true],
        [5, false],
      ],
      'one pass per event of each image, the last one seeing nothing behind it',
    );
  } finally {
    await relay.close();
    await nats.close();
  }
});

test('sent events older than the retention period are pruned; unsent and recent ones stay', async () => {
  await db.query("UPDATE outbox SET sent_at = now() - interval '3 days' WHERE sent_at IS NOT NULL");
  const [old] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NOT NULL');
  const fresh = [newImage(1, 'prune'), newImage(2, 'prune'), newImage(3, 'prune')];
  await withTransaction(ctx.pool, (tx) => insertImages(tx, 'prune', [], fresh));
  await db.query("UPDATE outbox SET sent_at = now() - interval '2 days' WHERE image_id = $1", [fresh[0]?.id]);
  await db.query('UPDATE outbox SET sent_at = now() WHERE image_id = $1', [fresh[1]?.id]);
  const relay = testRelay(new NatsClient({ url: NATS_URL, name: 'relay-prune' }, silentLog), { batch: 7, pollMs: 50 });
  assert.equal(await relay.prune(), (old?.n ?? 0) + 1);
  const left = await db.query<{ image_id: string; sent: boolean }>(
    'SELECT image_id, sent_at IS NOT NULL AS sent FROM outbox ORDER BY seq',
  );
  assert.deepEqual(left, [
    { image_id: fresh[1]?.id, sent: true },
    { image_id: fresh[2]?.id, sent: false },
  ]);
});
