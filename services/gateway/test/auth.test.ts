import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { authorized, echoUpstream, gateway, listen, TEST_TOKEN } from './helpers.ts';

describe('auth for writes through the gateway', () => {
  let upstream: FastifyInstance;
  let app: FastifyInstance;
  let upstreamUrl: string;

  before(async () => {
    upstream = echoUpstream();
    upstreamUrl = await listen(upstream);
    app = gateway({ COUNTER_URL: upstreamUrl });
    await app.ready();
  });

  after(async () => {
    await app.close();
    await upstream.close();
  });

  test('reads need no token', async () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS'] as const) {
      const res = await app.inject({ method, url: '/counter/echo/read' });
      assert.equal(res.statusCode, 200, method);
    }
  });

  test('POST, PUT, PATCH and DELETE without a token answer 401 JSON with a Bearer challenge', async () => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      const res = await app.inject({ method, url: '/counter/echo/write', payload: { n: 1 } });
      assert.equal(res.statusCode, 401, method);
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="berth"');
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode']);
      assert.equal(body.code, 'TOKEN_REQUIRED');
      assert.match(body.message, new RegExp(`^${method} needs an API token: send "Authorization: Bearer <token>"`));
    }
  });

  test('another scheme or a Bearer without a token is a 401 that names the problem', async () => {
    const basic = await app.inject({
      method: 'POST',
      url: '/counter/echo/w',
      headers: { authorization: 'Basic dXNlcjpwYXNz' },
    });
    assert.equal(basic.statusCode, 401);
    assert.match(basic.json().message, /^Authorization uses the "Basic" scheme; send "Authorization: Bearer <token>"$/);
    const bare = await app.inject({ method: 'DELETE', url: '/counter/echo/w', headers: { authorization: 'Bearer' } });
    assert.equal(bare.statusCode, 401);
    assert.match(bare.json().message, /has no token after "Bearer"/);
  });

  test('a wrong token answers 403 JSON that says which tokens are accepted, and never echoes the token', async () => {
    const res = await app.inject({
      method: 'PUT',
      url: '/counter/echo/w',
      headers: { authorization: 'Bearer not-the-right-token-at-all' },
    });
    assert.equal(res.statusCode, 403);
    assert.equal(res.json().code, 'TOKEN_REJECTED');
    assert.match(res.json().message, /API_TOKENS/);
    assert.doesNotMatch(res.body, /not-the-right-token/);
  });

  test('a write with the token reaches the upstream, the scheme in any case', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/counter/echo/w',
      headers: { ...authorized, 'content-type': 'application/json' },
      payload: '{"n":1}',
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().body, '{"n":1}');
    const lower = await app.inject({
      method: 'DELETE',
      url: '/counter/echo/w',
      headers: { authorization: `bearer ${TEST_TOKEN}` },
    });
    assert.equal(lower.statusCode, 200);
    assert.equal(lower.json().method, 'DELETE');
  });

  test('a refused upload is not read: the connection closes after the 401', async () => {
    const base = await listen(app);
    const { port } = new URL(base);
    const socket = connect(Number(port), '127.0.0.1');
    // if the gateway kept reading, the test would end here instead, failing the close check below
    socket.setTimeout(3000, () => socket.destroy());
    const started = performance.now();
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString();
    });
    socket.write('POST /counter/echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n');
    socket.write(Buffer.alloc(64 * 1024));
    await once(socket, 'close');
    assert.ok(performance.now() - started < 2500, 'the gateway closed the connection');
    assert.match(text, /^HTTP\/1\.1 401 /);
    assert.match(text, /connection: close/i);
  });

  test('a write to a service that is not deployed still needs the token first', async () => {
    const res = await app.inject({ method: 'POST', url: '/jokes' });
    assert.equal(res.statusCode, 401);
    const withToken = await app.inject({ method: 'POST', url: '/jokes', headers: authorized });
    assert.equal(withToken.statusCode, 503);
  });

  test('with AUTH_ENABLED=false writes pass without a token', async () => {
    const open = gateway({ COUNTER_URL: upstreamUrl, AUTH_ENABLED: 'false' });
    try {
      const res = await open.inject({ method: 'POST', url: '/counter/echo/w', payload: 'x' });
      assert.equal(res.statusCode, 200);
    } finally {
      await open.close();
    }
  });
});
