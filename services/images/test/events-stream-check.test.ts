import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConfigError, loadConfig } from '@berth/service-kit';
import { StorageType } from 'nats';
import { ImagesEnv } from '../src/config.ts';
import { eventsOptions } from '../src/events/settings.ts';
import { streamConfig } from '../src/events/stream.ts';
import { backlog, type EventsBed, openEventsBed, testEvents, testStream, waitFor } from './helpers/events.ts';
import { numberedPng } from './helpers/images.ts';

const stream = testStream();
let bed: EventsBed;

before(async () => {
  // the stream exists already, in memory: as a hand-made or misconfigured one would
  const { natsConnection } = await import('./helpers/events.ts');
  const nc = await natsConnection();
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ ...streamConfig(stream), storage: StorageType.Memory });
  } finally {
    await nc.close();
  }
  bed = await openEventsBed(stream, testEvents(stream));
});

after(async () => {
  await bed?.close();
});

test('a stream that keeps events in memory is named in /readyz, and events wait in the outbox', async () => {
  const { app } = bed.ctx;
  assert.ok(await waitFor(() => app.events.relay?.problem !== undefined));
  const upload = await app.inject({
    method: 'POST',
    url: '/images?dataset=check',
    payload: await numberedPng(1),
    headers: { 'content-type': 'image/png' },
  });
  assert.equal(upload.statusCode, 201, 'the API keeps taking changes');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(await backlog(bed.db), 1, 'the event was not handed to a stream that cannot keep it');
  const ready = await app.inject({ url: '/readyz' });
  assert.equal(ready.statusCode, 200);
  assert.equal(ready.json().status, 'degraded');
  assert.match(
    ready.json().checks.nats.error,
    new RegExp(`^Stream "${stream.name}" keeps its messages in memory, not on disk`),
  );
});

test('a duplicate window shorter than the relay may republish in stops the start, naming the variables', () => {
  const config = loadConfig(ImagesEnv, { EVENTS_DUPLICATE_WINDOW_MS: '10000' });
  assert.throws(
    () => eventsOptions(config),
    (err: Error) =>
      err instanceof ConfigError &&
      /^EVENTS_DUPLICATE_WINDOW_MS \(10000\) must be at least 30750, the time the outbox relay may publish an event again/.test(
        err.message,
      ),
  );
  assert.doesNotThrow(() => eventsOptions(loadConfig(ImagesEnv, {})));
});
