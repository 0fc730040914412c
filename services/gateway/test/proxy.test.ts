import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { authorized, closedPort, echoUpstream, eventStreamsClosed, gateway, listen, rawGet } from './helpers.ts';

describe('gateway forwarding', () => {
  let upstream: FastifyInstance;
  let app: FastifyInstance;
  let base: string;
  let upstreamUrl: string;

  before(async () => {
    upstream = echoUpstream();
    upstreamUrl = await listen(upstream);
    app = gateway({ COUNTER_URL: upstreamUrl, UPSTREAM_TIMEOUT_MS: '300' });
    base = await listen(app);
  });

  after(async () => {
    await app.close();
    await upstream.close();
  });

  test('forwards method, path and query unchanged', async () => {
    const res = await app.inject({ method: 'GET', url: '/counter/echo/a/b?x=1&y=%20z' });
    assert.equal(res.statusCode, 200);
    const seen = res.json();
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/counter/echo/a/b?x=1&y=%20z');
  });

  test('passes a given x-request-id upstream and echoes it', async () => {
    const res = await app.inject({ url: '/counter/echo/id', headers: { 'x-request-id': 'trace-42' } });
    assert.equal(res.headers['x-request-id'], 'trace-42');
    assert.equal(res.json().headers['x-request-id'], 'trace-42');
  });

  test('generates a request id when none is given and sends the same one upstream', async () => {
    const res = await app.inject({ url: '/counter/echo/id' });
    const id = res.headers['x-request-id'];
    assert.match(String(id), /^[0-9a-f-]{36}$/);
    assert.equal(res.json().headers['x-request-id'], id);
  });

  test('adds x-forwarded-for and drops hop-by-hop headers', async () => {
    // the chain a client sends is kept only from a trusted proxy
    const trusting = gateway({ COUNTER_URL: upstreamUrl, TRUSTED_PROXIES: '127.0.0.1' });
    try {
      const res = await trusting.inject({
        url: '/counter/echo/h',
        headers: { 'x-forwarded-for': '203.0.113.9', connection: 'keep-alive, x-secret', 'keep-alive': 'timeout=5' },
      });
      const headers = res.json().headers;
      assert.equal(headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
      assert.equal(headers['keep-alive'], undefined);
    } finally {
      await trusting.close();
    }
  });

  test('replaces the x-forwarded-* headers a client that is not a trusted proxy sends', async () => {
    const res = await app.inject({
      url: '/counter/echo/h',
      headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' },
    });
    const headers = res.json().headers;
    assert.equal(headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(headers['x-forwarded-proto'], 'http');
    assert.equal(headers['x-forwarded-host'], 'localhost:80');
  });

  test('streams a request body through untouched', async () => {
    const payload = JSON.stringify({ joke: 'naïve café ☕', n: [1, 2, 3] });
    const res = await app.inject({
      method: 'POST',
      url: '/counter/echo/body',
      headers: { 'content-type': 'application/json', ...authorized },
      payload,
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().body, payload);
    assert.equal(res.json().method, 'POST');
  });

  test('relays status, Location and repeated headers', async () => {
    const res = await app.inject({ url: '/counter/created' });
    assert.equal(res.statusCode, 201);
    assert.equal(res.headers.location, '/counter/x');
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  });

  test('streams an answer larger than the buffering limit intact', async () => {
    const res = await app.inject({ url: '/counter/big' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.rawPayload.length, 1024 * 1024 + 7);
    assert.ok(res.rawPayload.every((byte) => byte === 7));
  });

  test('streams server-sent events as they come and closes the upstream stream when the client leaves', async () => {
    // UPSTREAM_TIMEOUT_MS is 300 here: an event stream must outlive it
    const closedBefore = eventStreamsClosed;
    const controller = new AbortController();
    const res = await fetch(`${base}/counter/events`, {
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const started = performance.now();
    while (!text.includes('data: tick 8')) {
      const { value, done } = await reader.read();
      assert.equal(done, false, 'the stream ended early');
      text += new TextDecoder().decode(value);
    }
    assert.ok(performance.now() - started > 300, 'events kept coming past the upstream timeout');
    controller.abort();
    const deadline = Date.now() + 2000;
    while (eventStreamsClosed === closedBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(eventStreamsClosed, closedBefore + 1, 'the upstream saw the client leave');
  });

  test('answers 504 JSON when the upstream is slower than UPSTREAM_TIMEOUT_MS', async () => {
    const started = performance.now();
    const res = await app.inject({ url: '/counter/slow' });
    const elapsed = performance.now() - started;
    assert.equal(res.statusCode, 504);
    assert.equal(res.json().code, 'UPSTREAM_TIMEOUT');
    assert.match(res.json().message, /counter service did not answer within 300 ms/);
    assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  });

  test('refuses paths with dot segments instead of forwarding them', async () => {
    // over a real socket: an in-process request would resolve the dot segments before the gateway saw them
    for (const path of ['/counter/../jokes', '/counter/%2e%2e/admin', '/counter/./x', '/counter/%2E%2e%2fjokes']) {
      const res = await rawGet(base, path);
      assert.equal(res.statusCode, 400, path);
      assert.equal(JSON.parse(res.body).code, 'INVALID_PATH');
    }
    const broken = await rawGet(base, '/counter/%zz');
    assert.equal(broken.statusCode, 400, 'a path that does not decode is refused too');
  });

  test('refuses request targets that are not a path, OPTIONS * and absolute URLs included', async () => {
    for (const [method, target] of [
      ['OPTIONS', '*'],
      ['GET', `${upstreamUrl}/counter/echo/x`],
      ['GET', 'http://internal.example/counter/echo/x'],
    ] as const) {
      const res = await rawGet(base, target, {}, method);
      assert.equal(res.statusCode, 400, `${method} ${target}: ${res.body}`);
      const body = JSON.parse(res.body);
      assert.equal(body.code, 'INVALID_REQUEST_TARGET');
      assert.match(body.message, /^Request target ".+" is not a path; send one that starts with "\/"$/);
    }
  });

  test('answers 503 naming the variable for a service that is not deployed', async () => {
    const res = await app.inject({ url: '/jokes/random' });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().code, 'SERVICE_NOT_DEPLOYED');
    assert.match(res.json().message, /JOKES_URL/);
  });

  test('answers 404 in the shared shape for paths no service owns', async () => {
    const res = await app.inject({ url: '/nowhere' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().code, 'ROUTE_NOT_FOUND');
  });
});

describe('gateway with an upstream that is down', () => {
  test('answers 503 JSON fast when nothing listens at the upstream address', async () => {
    const port = await closedPort();
    const app = gateway({ COUNTER_URL: `http://127.0.0.1:${port}` });
    try {
      const started = performance.now();
      const res = await app.inject({ url: '/' });
      const elapsed = performance.now() - started;
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal(res.json().code, 'UPSTREAM_UNAVAILABLE');
      assert.match(res.json().message, /counter service is unavailable/);
      assert.ok(elapsed < 2000, `took ${elapsed} ms`);
    } finally {
      await app.close();
    }
  });

  test('survives many failing requests at once and still answers', async () => {
    const port = await closedPort();
    const app = gateway({ COUNTER_URL: `http://127.0.0.1:${port}` });
    try {
      const answers = await Promise.all(Array.from({ length: 200 }, () => app.inject({ url: '/counter/x' })));
      assert.ok(answers.every((res) => res.statusCode === 503));
      assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    } finally {
      await app.close();
    }
  });
});
