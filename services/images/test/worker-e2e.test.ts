import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPool } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { buildWorker } from '../src/analysis/app.ts';
import { Store } from '../src/storage/store.ts';
import type { TestDatabase } from './helpers/database.ts';
import {
  type EventsApp,
  type EventsBed,
  NATS_URL,
  openEventsBed,
  testEvents,
  testStream,
  waitFor,
} from './helpers/events.ts';
import { copiesOf, scene } from './helpers/pictures.ts';

const stream = testStream();
let bed: EventsBed;
let db: TestDatabase;
let dir: EventsBed['dir'];
let ctx: EventsApp;
let worker: FastifyInstance;

before(async () => {
  // the images app with its relay: uploads become events on the test stream
  bed = await openEventsBed(stream, testEvents(stream));
  ({ db, dir, ctx } = bed);
  worker = buildWorker(
    {
      LOG_LEVEL: 'silent',
      NATS_URL,
      EVENTS_STREAM: stream.name,
      EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
      WORKER_CONSUMER: 'e2e',
      WORKER_MAX_DELIVER: 5,
      WORKER_ACK_WAIT_MS: 10_000,
      WORKER_RETRY_DELAY_MS: 100,
      WORKER_FORGET_INTERVAL_MS: 0,
      WORKER_CATCH_UP_INTERVAL_MS: 0,
      WORKER_CATCH_UP_AFTER_MS: 600_000,
      WORKER_CONCURRENCY: 2,
      WORKER_BATCH: 16,
      MAX_PIXELS: 4_000_000,
    },
    {
      pool: createPool({ connectionString: db.url, applicationName: 'berth-worker-test', max: 4 }),
      store: new Store(dir.path),
    },
  );
  await worker.ready();
});

after(async () => {
  await worker?.close();
  await bed?.close();
});

async function upload(bytes: Buffer, split: string): Promise<{ id: string }> {
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/images?dataset=e2e&split=${split}`,
    payload: bytes,
    headers: { 'content-type': 'image/png' },
  });
  assert.equal(response.statusCode, 201, response.body);
  return response.json();
}

test('an upload reaches the worker through the outbox, the relay and JetStream, and its near copy shows in GET /images/:id/similar', async () => {
  const picture = await scene(71);
  const [, , , smaller] = await copiesOf(picture);
  const original = await upload(picture, 'train');
  const copy = await upload(smaller as Buffer, 'test');
  const other = await upload(await scene(72), 'test');

  const similar = () => ctx.app.inject({ method: 'GET', url: `/images/${original.id}/similar` });
  assert.ok(await waitFor(async () => (await similar()).statusCode === 200, 30_000), (await similar()).body);
  // the copy may be analysed a moment after the original
  let ids: string[] = [];
  const found = await waitFor(async () => {
    ids = (await similar()).json().items.map((item: { image: { id: string } }) => item.image.id);
    return ids.includes(copy.id);
  }, 30_000);
  assert.ok(found, `similar: ${ids}`);
  assert.ok(!ids.includes(other.id));

  const leaks = () => ctx.app.inject({ method: 'GET', url: '/images/datasets/e2e/leaks' });
  assert.ok(await waitFor(async () => (await leaks()).json().unanalysed === 0, 30_000));
  const page = await leaks();
  assert.equal(page.statusCode, 200);
  const pairs = page.json().items;
  assert.deepEqual(
    pairs.map((pair: { image: { id: string }; train: { id: string } }) => [pair.image.id, pair.train.id]),
    [[copy.id, original.id]],
  );
});
