import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { authorized, closedPort, gateway } from './helpers.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Behaviour = 'ok' | 'reset' | 'hang' | 'half-answer';

/**
 * An upstream written at the socket level, so a test can make it fail in exact ways: reset the
 * connection when a request arrives, never answer, or break off in the middle of an answer.
 */
class FlakyUpstream {
  readonly server: Server;
  /** What the next requests get; one entry is used per request, the last one repeats. */
  plan: Behaviour[] = ['ok'];
  requests = 0;
  connections = 0;
  readonly #sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((socket) => {
      this.connections++;
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
      let buffered = '';
      socket.on('data', (chunk) => {
        buffered += chunk.toString('latin1');
        while (buffered.includes('\r\n\r\n')) {
          buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
          this.#answer(socket);
        }
      });
    });
  }

  #answer(socket: Socket) {
    const behaviour = this.plan.length > 1 ? (this.plan.shift() as Behaviour) : (this.plan[0] as Behaviour);
    this.requests++;
    if (behaviour === 'reset') socket.resetAndDestroy();
    else if (behaviour === 'half-answer') {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nonly a part');
      setTimeout(() => socket.destroy(), 20);
    } else if (behaviour === 'ok') {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok');
    }
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close() {
    for (const socket of this.#sockets) socket.destroy();
    this.server.close();
  }
}

describe('one retry for GET and HEAD on connection errors', () => {
  let upstream: FlakyUpstream;
  let app: FastifyInstance;
  let url: string;

  before(async () => {
    upstream = new FlakyUpstream();
    url = await upstream.listen();
    app = gateway({ COUNTER_URL: url, CIRCUIT_FAILURES: '0' });
  });

  after(async () => {
    await app.close();
    await upstream.close();
  });

  test('a GET whose connection is reset before any answer is sent again and succeeds', async () => {
    upstream.plan = ['reset', 'ok'];
    upstream.requests = 0;
    const res = await app.inject({ url: '/counter/x' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'ok');
    assert.equal(upstream.requests, 2);
  });

  test('a HEAD is retried the same way', async () => {
    upstream.plan = ['reset', 'ok'];
    upstream.requests = 0;
    const res = await app.inject({ method: 'HEAD', url: '/counter/x' });
    assert.equal(res.statusCode, 200);
    assert.equal(upstream.requests, 2);
  });

  test('only once: a second reset is answered 502', async () => {
    upstream.plan = ['reset', 'reset', 'ok'];
    upstream.requests = 0;
    const res = await app.inject({ url: '/counter/x' });
    assert.equal(res.statusCode, 502);
    assert.equal(res.json().code, 'UPSTREAM_ERROR');
    assert.equal(upstream.requests, 2);
  });

  test('a POST is never sent twice', async () => {
    upstream.plan = ['reset', 'ok'];
    upstream.requests = 0;
    const res = await app.inject({ method: 'POST', url: '/counter/x', headers: authorized, payload: 'once' });
    assert.equal(res.statusCode, 502);
    assert.equal(upstream.requests, 1);
  });

  test('nothing is retried once part of the answer has arrived', async () => {
    upstream.plan = ['half-answer', 'ok'];
    upstream.requests = 0;
    const res = await app.inject({ url: '/counter/x' });
    assert.equal(res.statusCode, 502);
    assert.equal(upstream.requests, 1);
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(res.body)), 'no stale upstream headers');
  });

  test('UPSTREAM_RETRY=false turns retries off', async () => {
    const noRetry = gateway({ COUNTER_URL: url, CIRCUIT_FAILURES: '0', UPSTREAM_RETRY: 'false' });
    try {
      upstream.plan = ['reset', 'ok'];
      upstream.requests = 0;
      assert.equal((await noRetry.inject({ url: '/counter/x' })).statusCode, 502);
      assert.equal(upstream.requests, 1);
    } finally {
      await noRetry.close();
    }
  });
});

describe('circuit breaker per upstream', () => {
  let upstream: FlakyUpstream;
  let url: string;

  before(async () => {
    upstream = new FlakyUpstream();
    url = await upstream.listen();
  });

  after(async () => {
    await upstream.close();
  });

  test('after N timeouts in a row, 1,000 requests are refused far faster than one timeout each, without touching the network', async (t) => {
    upstream.plan = ['hang'];
    const app = gateway({
      COUNTER_URL: url,
      UPSTREAM_TIMEOUT_MS: '1000',
      CIRCUIT_FAILURES: '3',
      CIRCUIT_COOLDOWN_MS: '60000',
      RATE_LIMIT_ENABLED: 'false',
    });
    try {
      const first = await Promise.all(Array.from({ length: 3 }, () => app.inject({ url: '/counter/x' })));
      assert.deepEqual(
        first.map((res) => res.statusCode),
        [504, 504, 504],
      );
      const connections = upstream.connections;
      const requests = upstream.requests;
      const started = performance.now();
      // one after another, so a refusal that waited for the upstream would cost a whole timeout
      const answers = [];
      for (let i = 0; i < 1000; i++) answers.push(await app.inject({ url: '/counter/x' }));
      const elapsed = performance.now() - started;
      t.diagnostic(`1,000 requests with the circuit open took ${Math.round(elapsed)} ms`);
      assert.ok(
        answers.every((res) => res.statusCode === 503),
        'every request answered 503',
      );
      const body = answers[0]?.json();
      assert.equal(body.code, 'UPSTREAM_UNAVAILABLE');
      assert.match(
        body.message,
        /^The counter service is unavailable \(it failed 3 times in a row\); the gateway tries it again in \d+ s$/,
      );
      assert.ok(Number(answers[0]?.headers['retry-after']) >= 1);
      // waiting for the upstream each time would take 1,000 timeouts (1,000 s); the bound leaves room
      // for a busy machine while still proving no refusal waited for the network
      assert.ok(elapsed < 100 * 1000, `1,000 refusals took ${Math.round(elapsed)} ms`);
      assert.equal(upstream.connections, connections, 'no new connection to the upstream');
      assert.equal(upstream.requests, requests, 'no request reached the upstream');
      // the gateway's own routes are not affected
      assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    } finally {
      await app.close();
    }
  });

  test('after the cool-down one probe goes through; when it succeeds the circuit closes', async () => {
    upstream.plan = ['hang'];
    const app = gateway({
      COUNTER_URL: url,
      UPSTREAM_TIMEOUT_MS: '200',
      CIRCUIT_FAILURES: '2',
      CIRCUIT_COOLDOWN_MS: '300',
    });
    try {
      await Promise.all([app.inject({ url: '/counter/x' }), app.inject({ url: '/counter/x' })]);
      assert.equal((await app.inject({ url: '/counter/x' })).statusCode, 503);

      // still down at the first probe: it fails and the circuit opens again
      await sleep(320);
      const probe = await Promise.all([app.inject({ url: '/counter/x' }), app.inject({ url: '/counter/x' })]);
      assert.deepEqual(probe.map((res) => res.statusCode).sort(), [503, 504], 'one probe, one refused');
      assert.equal((await app.inject({ url: '/counter/x' })).statusCode, 503);

      // back up: the next probe closes the circuit
      upstream.plan = ['ok'];
      await sleep(320);
      const again = await Promise.all(Array.from({ length: 5 }, () => app.inject({ url: '/counter/x' })));
      assert.deepEqual(
        again.map((res) => res.statusCode).sort(),
        [200, 503, 503, 503, 503],
        'while the probe is out the rest are refused',
      );
      const after = await Promise.all(Array.from({ length: 5 }, () => app.inject({ url: '/counter/x' })));
      assert.ok(
        after.every((res) => res.statusCode === 200),
        'closed again',
      );
    } finally {
      await app.close();
    }
  });

  test('a service that refuses connections trips the circuit too, and each upstream has its own', async () => {
    const port = await closedPort();
    upstream.plan = ['ok'];
    const app = gateway({
      COUNTER_URL: `http://127.0.0.1:${port}`,
      IMAGES_URL: url,
      CIRCUIT_FAILURES: '2',
      CIRCUIT_COOLDOWN_MS: '60000',
    });
    try {
      for (let i = 0; i < 2; i++) {
        assert.equal((await app.inject({ url: '/counter/x' })).statusCode, 503);
      }
      const refused = await app.inject({ url: '/counter/x' });
      assert.match(refused.json().message, /failed 2 times in a row/);
      assert.equal((await app.inject({ url: '/images/x' })).statusCode, 200, 'images is unaffected');
    } finally {
      await app.close();
    }
  });

  test('timeouts of requests with a body and of thumbnails count neither way; a slow GET still does', async () => {
    const app = gateway({ IMAGES_URL: url, UPSTREAM_TIMEOUT_MS: '150', CIRCUIT_FAILURES: '2' });
    try {
      upstream.plan = ['hang'];
      const id = '0190a3c4-1e6b-7c2d-9f00-000000000001';
      const slow = [
        { method: 'POST' as const, url: '/images?dataset=big', headers: authorized, payload: 'x'.repeat(64) },
        { method: 'POST' as const, url: '/images/imports', headers: authorized, payload: 'y'.repeat(64) },
        { method: 'GET' as const, url: `/images/${id}/thumbnail?size=256` },
        { method: 'GET' as const, url: `/images/thumbnails?ids=${id}&size=64` },
      ];
      for (const request of slow) {
        const res = await app.inject(request);
        assert.equal(res.statusCode, 504, `${request.method} ${request.url}`);
      }
      upstream.plan = ['ok'];
      assert.equal((await app.inject({ url: '/images/x' })).statusCode, 200, 'the circuit stayed closed');

      upstream.plan = ['hang'];
      await app.inject({ url: '/images/a' });
      await app.inject({ url: '/images/b' });
      upstream.plan = ['ok'];
      assert.equal((await app.inject({ url: '/images/c' })).statusCode, 503, 'two slow GETs open it');
    } finally {
      await app.close();
    }
  });
});
