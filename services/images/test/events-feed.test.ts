import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { loadConfig } from '@berth/service-kit';
import type { NatsConnection } from 'nats';
import { buildApp as buildGateway } from '../../gateway/src/app.ts';
import { GatewayEnv } from '../../gateway/src/config.ts';
import type { TestDatabase } from './helpers/database.ts';
import {
  backlog,
  type EventsApp,
  type EventsBed,
  eventsApp,
  openEventsBed,
  readStream,
  testEvents,
  testStream,
  waitFor,
} from './helpers/events.ts';
import { numberedPng } from './helpers/images.ts';

const stream = testStream();
/** The feeds' pace in this file: far above what the other tests send, far below a replay of the test below. */
const FEED_BYTES_PER_S = 128 * 1024;
let bed: EventsBed;
let db: TestDatabase;
let dir: EventsBed['dir'];
let nc: NatsConnection;
let ctx: EventsApp;
let base: string;

before(async () => {
  bed = await openEventsBed(stream, testEvents(stream, { feedBytesPerSecond: FEED_BYTES_PER_S }));
  ({ db, dir, nc, ctx } = bed);
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`;
  assert.ok(await waitFor(() => ctx.app.events.nats?.connected === true));
});

after(async () => {
  await bed?.close();
});

interface SseEvent {
  id: string;
  event: string;
  data: { id: string; type: string; dataset: string; imageId: string; image: { id: string } };
}

/** An open feed read as a client would: events parsed, comments counted. */
async function openFeed(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let ended = false;
  const reading = (async () => {
    if (!response.ok || !response.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else {
              const at = line.indexOf(': ');
              if (at > 0) fields[line.slice(0, at)] = line.slice(at + 2);
            }
          }
          if (fields.data !== undefined) {
            events.push({ id: fields.id ?? '', event: fields.event ?? '', data: JSON.parse(fields.data) });
          }
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
    ended = true;
  })();
  await waitFor(() => comments.includes('connected') || !response.ok);
  return {
    response,
    events,
    comments,
    get ended() {
      return ended;
    },
    async close() {
      controller.abort();
      await reading;
    },
  };
}

let counter = 0;
async function upload(dataset = 'feed') {
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/images?dataset=${dataset}`,
    payload: await numberedPng(counter++),
    headers: { 'content-type': 'image/png' },
  });
  assert.equal(response.statusCode, 201);
  return response.json() as { id: string };
}

async function published(): Promise<void> {
  assert.ok(await waitFor(async () => (await backlog(db)) === 0));
}

test('GET /images/events streams new events only: id = stream sequence, event = type, data = the event', async () => {
  await upload();
  await published();
  const feed = await openFeed(`${base}/images/events`);
  try {
    assert.equal(feed.response.status, 200);
    assert.match(feed.response.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.ok(feed.response.headers.get('x-request-id'));
    const image = await upload();
    assert.ok(await waitFor(() => feed.events.length >= 1));
    const stored = (await readStream(nc, stream.name)).find((m) => m.body.imageId === image.id);
    assert.equal(feed.events.length, 1, 'what came before the feed opened is not sent');
    assert.deepEqual(feed.events[0], { id: String(stored?.seq), event: 'created', data: stored?.body });
  } finally {
    await feed.close();
  }
});

test('Last-Event-ID resumes right after that event, without gaps or repeats; ?since= does the same', async () => {
  const image = await upload();
  await ctx.app.inject({ method: 'PATCH', url: `/images/${image.id}`, payload: { label: 'x' } });
  await ctx.app.inject({ method: 'DELETE', url: `/images/${image.id}` });
  await published();
  const all = await readStream(nc, stream.name);
  const from = all[all.length - 4] as (typeof all)[number];
  const expected = all.filter((m) => m.seq > from.seq).map((m) => String(m.seq));
  assert.equal(expected.length, 3);

  for (const open of [
    () => openFeed(`${base}/images/events`, { 'last-event-id': String(from.seq) }),
    () => openFeed(`${base}/images/events?since=${from.seq}`),
    // a reconnecting EventSource sends the header and its first URL again: the header wins
    () => openFeed(`${base}/images/events?since=0`, { 'last-event-id': String(from.seq) }),
  ]) {
    const feed = await open();
    try {
      // everything after that event (later feeds also see what earlier rounds added), then live ones
      const backlogCount: number = expected.length;
      assert.ok(await waitFor(() => feed.events.length >= backlogCount));
      const next = await upload();
      assert.ok(await waitFor(() => feed.events.length >= backlogCount + 1));
      assert.deepEqual(
        feed.events.map((e) => e.id),
        [...expected, feed.events[backlogCount]?.id],
        'no gap, no repeat',
      );
      assert.deepEqual(
        feed.events.slice(0, 3).map((e) => e.event),
        ['created', 'updated', 'deleted'],
      );
      assert.equal(feed.events[backlogCount]?.data.imageId, next.id, 'and goes on live');
      assert.ok(Number(feed.events[backlogCount]?.id) > Number(expected.at(-1)));
      expected.push(feed.events[backlogCount]?.id as string);
    } finally {
      await feed.close();
    }
  }
});

test('the feed filters by type and by data set (a name with a dot included)', async () => {
  const deletes = await openFeed(`${base}/images/events?type=deleted`);
  const dotted = await openFeed(`${base}/images/events?dataset=mnist.v2`);
  try {
    const a = await upload('mnist.v2');
    const b = await upload('other');
    await ctx.app.inject({ method: 'DELETE', url: `/images/${b.id}` });
    await ctx.app.inject({ method: 'DELETE', url: `/images/${a.id}` });
    assert.ok(await waitFor(() => deletes.events.length >= 2 && dotted.events.length >= 2));
    await published();
    assert.deepEqual(
      deletes.events.map((e) => [e.event, e.data.imageId]),
      [
        ['deleted', b.id],
        ['deleted', a.id],
      ],
    );
    assert.deepEqual(
      dotted.events.map((e) => [e.event, e.data.dataset]),
      [
        ['created', 'mnist.v2'],
        ['deleted', 'mnist.v2'],
      ],
    );
  } finally {
    await deletes.close();
    await dotted.close();
  }
});

test('an idle feed gets heartbeat comments; a client that leaves has its consumer deleted', async () => {
  const consumers = async () => (await (await nc.jetstreamManager()).streams.info(stream.name)).state.consumer_count;
  const feed = await openFeed(`${base}/images/events`);
  assert.equal(ctx.app.events.feed.clients, 1);
  assert.equal(await consumers(), 1);
  assert.ok(await waitFor(() => feed.comments.includes('keep-alive'), 5000), 'a heartbeat within the interval');
  await feed.close();
  assert.ok(await waitFor(() => ctx.app.events.feed.clients === 0), 'the feed ended');
  assert.ok(await waitFor(async () => (await consumers()) === 0), 'its consumer was deleted');
});

test('a replay of the whole stream goes at EVENTS_FEED_BYTES_PER_S, not as fast as the client reads', async () => {
  const js = nc.jetstream();
  const padding = 'x'.repeat(900);
  const sent = 1500;
  await Promise.all(
    Array.from({ length: sent }, (_, i) =>
      js.publish(
        `${stream.subjectPrefix}.created.replay`,
        JSON.stringify({ id: `r${i}`, type: 'created', dataset: 'replay', imageId: `r${i}`, image: { id: padding } }),
      ),
    ),
  );
  const feed = await openFeed(`${base}/images/events?since=0&dataset=replay`);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const got = feed.events.length;
    // a second's worth at once and a second more: about 2 × 128 KiB of ~1 KB events
    assert.ok(got > 50, `${got} events arrived`);
    assert.ok(got < 400, `${got} of ${sent} events arrived in 1 s`);
  } finally {
    await feed.close();
  }
});

test('HEAD /images/events answers the feed’s headers and ends, rather than hanging', async () => {
  const response = await fetch(`${base}/images/events`, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
  assert.equal(response.status, 200);
  assert.match(String(response.headers.get('content-type')), /^text\/event-stream/);
});

test('a malformed Last-Event-ID or query is a 400 naming it', async () => {
  const header = await ctx.app.inject({ url: '/images/events', headers: { 'last-event-id': 'abc' } });
  assert.equal(header.statusCode, 400);
  assert.match(header.json().message, /Header "last-event-id" must be the id of an event the feed sent/);
  const type = await ctx.app.inject({ url: '/images/events?type=renamed' });
  assert.equal(type.statusCode, 400);
  assert.match(type.json().message, /type/);
});

test('the feed works through the gateway past its upstream timeout, and ends when the service shuts down', async () => {
  const other = await eventsApp(db.url, dir.path, testEvents(stream, { relayEnabled: false }));
  await other.app.listen({ port: 0, host: '127.0.0.1' });
  const upstream = `http://127.0.0.1:${(other.app.server.address() as AddressInfo).port}`;
  assert.ok(await waitFor(() => other.app.events.nats?.connected === true));
  const gateway = buildGateway(
    loadConfig(GatewayEnv, {
      LOG_LEVEL: 'silent',
      IMAGES_URL: upstream,
      COUNTER_URL: '',
      JOKES_URL: '',
      UPSTREAM_TIMEOUT_MS: '300',
      IDLE_TIMEOUT_MS: '1000',
    }),
    { tokens: ['feed-test-token-0123456789'] },
  );
  await gateway.listen({ port: 0, host: '127.0.0.1' });
  const gatewayUrl = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  try {
    const feed = await openFeed(`${gatewayUrl}/images/events`);
    assert.equal(feed.response.status, 200);
    // idle for longer than the gateway's upstream timeout, then an event still arrives
    await new Promise((resolve) => setTimeout(resolve, 800));
    const image = await upload();
    assert.ok(await waitFor(() => feed.events.length >= 1));
    assert.equal(feed.events[0]?.data.imageId, image.id);
    assert.equal(feed.ended, false);
    await other.app.close();
    assert.ok(await waitFor(() => feed.ended), 'shutdown ended the stream');
    await feed.close();
  } finally {
    await other.app.close();
    await gateway.close();
  }
});
