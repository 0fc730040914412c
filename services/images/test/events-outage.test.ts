import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createPool } from '@berth/service-kit';
import type { NatsConnection } from 'nats';
import { NatsClient } from '../src/events/nats.ts';
import { OutboxRelay, type PassResult } from '../src/events/relay.ts';
import { tempDir } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import {
  backlog,
  eventsApp,
  natsConnection,
  readStream,
  silentLog,
  testEvents,
  testStream,
  waitFor,
} from './helpers/events.ts';
import { numberedPng } from './helpers/images.ts';
import { type PrivateNats, startNatsServer } from './helpers/nats-server.ts';

const CRASH_RELAY = fileURLToPath(new URL('./helpers/crash-relay.ts', import.meta.url));

const stream = testStream();
let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let nats: PrivateNats;

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  nats = await startNatsServer();
});

after(async () => {
  await nats?.close();
  await db?.drop();
  await dir?.remove();
});

async function uploadAll(app: Awaited<ReturnType<typeof eventsApp>>['app'], from: number, count: number) {
  const statuses: number[] = [];
  let next = from;
  const worker = async () => {
    while (next < from + count) {
      const n = next++;
      const response = await app.inject({
        method: 'POST',
        url: '/images?dataset=outage&label=n',
        payload: await numberedPng(n, 12),
        headers: { 'content-type': 'image/png' },
      });
      statuses.push(response.statusCode);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return statuses;
}

async function withConnection<T>(work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await natsConnection(nats.url);
  try {
    return await work(nc);
  } finally {
    await nc.close();
  }
}

test('with NATS stopped 500 uploads are all answered 201; when it returns every event arrives exactly once', async () => {
  const ctx = await eventsApp(db.url, dir.path, testEvents(stream, { natsUrl: nats.url }));
  try {
    const connected = () => ctx.app.events.nats?.connected === true;
    assert.ok(await waitFor(connected), 'connected at first');
    assert.ok(
      await waitFor(() =>
        withConnection(async (nc) =>
          (await nc.jetstreamManager()).streams.info(stream.name).then(
            () => true,
            () => false,
          ),
        ),
      ),
      'the relay set the stream up',
    );

    await nats.stop();
    assert.ok(await waitFor(() => !connected()), 'saw NATS go');
    const statuses = await uploadAll(ctx.app, 0, 500);
    assert.equal(statuses.length, 500);
    assert.ok(
      statuses.every((status) => status === 201),
      `all 201, got ${[...new Set(statuses)]}`,
    );
    assert.equal(await backlog(db), 500, 'the events wait in the outbox');

    const ready = await ctx.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 200, 'NATS alone does not make the service not-ready');
    assert.equal(ready.json().status, 'degraded');
    assert.equal(ready.json().checks.nats.status, 'down');
    const metrics = (await ctx.app.inject({ url: '/metrics' })).body;
    assert.match(metrics, /^outbox_backlog\{[^}]*\} 500$/m);
    assert.match(metrics, /^nats_connected\{[^}]*\} 0$/m);
    const feed = await ctx.app.inject({ url: '/images/events' });
    assert.equal(feed.statusCode, 503);
    assert.equal(feed.json().code, 'DEPENDENCY_UNAVAILABLE');

    await nats.start();
    assert.ok(await waitFor(async () => (await backlog(db)) === 0, 60_000), 'the backlog drained without a restart');

    const ids = (await db.query<{ id: string; image_id: string }>('SELECT id, image_id FROM outbox')).map((r) => r.id);
    const stored = await withConnection((nc) => readStream(nc, stream.name));
    assert.equal(stored.length, 500);
    assert.deepEqual(stored.map((m) => m.msgId).sort(), ids.sort());
    assert.equal(new Set(stored.map((m) => m.body.imageId)).size, 500, 'each upload once');
    assert.equal((await ctx.app.inject({ url: '/readyz' })).json().status, 'ready');
  } finally {
    await ctx.app.close();
  }
});

test('a relay killed between publish and mark-sent loses nothing: the republish is dropped as a duplicate', async () => {
  // events written by an app without a relay
  const quiet = await eventsApp(db.url, dir.path, undefined);
  try {
    const statuses = await uploadAll(quiet.app, 1000, 20);
    assert.ok(statuses.every((status) => status === 201));
  } finally {
    await quiet.app.close();
  }
  assert.equal(await backlog(db), 20);
  const before = (await withConnection((nc) => readStream(nc, stream.name))).length;

  const child = spawn(process.execPath, [CRASH_RELAY, db.url, nats.url, JSON.stringify(stream)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const [, signal] = await once(child, 'exit');
  assert.equal(signal, 'SIGKILL', output);
  assert.match(output, /published 20/);

  const afterCrash = await withConnection((nc) => readStream(nc, stream.name));
  assert.equal(afterCrash.length, before + 20, 'the batch reached the stream');
  assert.equal(await backlog(db), 20, 'but was never marked sent');

  const client = new NatsClient({ url: nats.url, name: 'relay-after-crash' }, silentLog);
  client.start();
  await client.ready();
  const results: PassResult[] = [];
  const pool = createPool({ connectionString: db.url, applicationName: 'berth-images-test' });
  const relay = new OutboxRelay({
    pool,
    nats: client,
    stream,
    settings: { batch: 1000, pollMs: 50, publishTimeoutMs: 2000, retentionMs: 3600_000, pruneEveryMs: 3600_000 },
    log: silentLog,
    onPublished: (result) => results.push(result),
  });
  try {
    // the dead relay's transaction is rolled back as soon as PostgreSQL sees its connection close
    assert.ok(
      await waitFor(async () => {
        await relay.drain();
        return (await backlog(db)) === 0;
      }),
    );
  } finally {
    await client.close();
    await pool.end();
  }
  assert.equal(
    results.reduce((sum, r) => sum + r.published, 0),
    20,
  );
  assert.equal(
    results.reduce((sum, r) => sum + r.duplicates, 0),
    20,
    'JetStream dropped every republished copy',
  );
  const final = await withConnection((nc) => readStream(nc, stream.name));
  assert.equal(final.length, before + 20, 'nothing stored twice');
  assert.equal(new Set(final.map((m) => m.msgId)).size, final.length);
});
