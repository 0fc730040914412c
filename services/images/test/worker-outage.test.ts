import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPool } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type { NatsConnection } from 'nats';
import { buildWorker } from '../src/analysis/app.ts';
import { ensureStream, subjectFor } from '../src/events/stream.ts';
import { uuidv7 } from '../src/ids.ts';
import { prepareDatabase } from '../src/setup.ts';
import { Store } from '../src/storage/store.ts';
import { tempDir } from './helpers/app.ts';
import { type PrivateServer, privateServer } from './helpers/cluster.ts';
import { queryOnce } from './helpers/database.ts';
import { deleteStream, eventsApp, NATS_URL, natsConnection, testStream, waitFor } from './helpers/events.ts';
import { scene } from './helpers/pictures.ts';

const stream = testStream();
let server: PrivateServer;
let url: string;
let dir: Awaited<ReturnType<typeof tempDir>>;
let nc: NatsConnection;
let worker: FastifyInstance;

before(async () => {
  server = await privateServer();
  url = server.url('images_worker_outage');
  await prepareDatabase(url);
  dir = await tempDir();
  nc = await natsConnection();
  await ensureStream(nc, stream);
});

after(async () => {
  await worker?.close();
  await deleteStream(nc, stream.name).catch(() => {});
  await nc?.drain();
  await server?.destroy();
  await dir?.remove();
});

async function metric(name: string, label: string): Promise<number> {
  const text = (await worker.inject({ method: 'GET', url: '/metrics' })).body;
  const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(label));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

test('while PostgreSQL is down an event is nak’ed and retried, and applied once the database is back', async () => {
  const uploader = await eventsApp(url, dir.path, undefined);
  const response = await uploader.app.inject({
    method: 'POST',
    url: '/images?dataset=outage',
    payload: await scene(81),
    headers: { 'content-type': 'image/png' },
  });
  assert.equal(response.statusCode, 201, response.body);
  const image = response.json();
  await uploader.app.close();

  worker = buildWorker(
    {
      LOG_LEVEL: 'silent',
      NATS_URL,
      EVENTS_STREAM: stream.name,
      EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
      WORKER_CONSUMER: 'outage',
      WORKER_MAX_DELIVER: 50,
      WORKER_ACK_WAIT_MS: 10_000,
      WORKER_RETRY_DELAY_MS: 50,
      WORKER_FORGET_INTERVAL_MS: 0,
      WORKER_CATCH_UP_INTERVAL_MS: 0,
      WORKER_CATCH_UP_AFTER_MS: 600_000,
      WORKER_CONCURRENCY: 2,
      WORKER_BATCH: 16,
      MAX_PIXELS: 4_000_000,
    },
    {
      pool: createPool({ connectionString: url, applicationName: 'berth-worker-test', max: 4, connectTimeoutMs: 500 }),
      store: new Store(dir.path),
    },
  );
  await worker.ready();
  assert.ok(await waitFor(async () => (await worker.inject({ method: 'GET', url: '/readyz' })).statusCode === 200));

  await server.stop();
  const event = { id: uuidv7(), type: 'created', occurredAt: new Date().toISOString(), dataset: 'outage' };
  await nc
    .jetstream()
    .publish(
      subjectFor(stream.subjectPrefix, 'created', 'outage'),
      JSON.stringify({ ...event, imageId: image.id, image }),
    );
  assert.ok(await waitFor(async () => (await metric('images_worker_messages_failed_total', 'unavailable')) >= 2));
  const readyz = await worker.inject({ method: 'GET', url: '/readyz' });
  assert.equal(readyz.statusCode, 503);
  assert.equal(readyz.json().checks.postgres.status, 'down');

  await server.start();
  const analysed = async () =>
    (
      await queryOnce<{ status: string | null }>(url, 'SELECT analysis_status AS status FROM images WHERE id = $1', [
        image.id,
      ])
    )[0]?.status === 'done';
  assert.ok(await waitFor(analysed, 30_000));
  assert.equal(await metric('images_worker_messages_processed_total', 'applied'), 1);
  assert.ok((await metric('images_worker_messages_redelivered_total', '')) >= 2);
});
