import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { authorized, echoUpstream, gateway, listen } from './helpers.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface RawResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from connecting until the server closed the connection. */
  closedAfterMs: number;
}

/**
 * Talks HTTP/1.1 by hand: writes `head`, then `drip` once every `everyMs` until the server answers or
 * closes, and returns what came back. This is how a slow or oversized client looks to the gateway.
 */
function raw(port: number, head: string, options: { drip?: string; everyMs?: number; maxMs?: number } = {}) {
  return new Promise<RawResult>((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${options.maxMs ?? 5000} ms`));
    }, options.maxMs ?? 5000);
    socket.on('connect', () => {
      socket.write(head);
      if (options.drip) {
        timer = setInterval(() => {
          if (!socket.destroyed && socket.writable) socket.write(options.drip as string);
        }, options.everyMs ?? 100);
      }
    });
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      const [top = '', ...rest] = text.split('\r\n\r\n');
      const [status = '', ...lines] = top.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const at = line.indexOf(':');
        if (at > 0) headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      resolve({
        statusCode: Number(status.split(' ')[1] ?? 0),
        headers,
        body: rest.join('\r\n\r\n'),
        closedAfterMs: performance.now() - started,
      });
    });
  });
}

/** POSTs a body in chunks without a Content-Length (chunked transfer encoding). */
function postChunked(base: string, path: string, chunks: Buffer[], headers: Record<string, string> = {}) {
  return new Promise<{ statusCode: number; body: string }>((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method: 'POST', headers: { ...authorized, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    (async () => {
      for (const chunk of chunks) {
        if (req.destroyed) return;
        req.write(chunk);
        await sleep(5);
      }
      req.end();
    })().catch(reject);
  });
}

function expectSecurityHeaders(headers: Record<string, unknown>, what: string) {
  assert.equal(headers['x-content-type-options'], 'nosniff', `${what}: x-content-type-options`);
  assert.equal(headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", `${what}: CSP`);
  assert.ok(headers['strict-transport-security'], `${what}: strict-transport-security`);
  assert.equal(headers['x-frame-options'], 'DENY', `${what}: x-frame-options`);
  assert.equal(headers['x-xss-protection'], undefined, `${what}: no headers only HTML pages or old browsers use`);
}

describe('request limits and timeouts', () => {
  let upstream: FastifyInstance;
  let app: FastifyInstance;
  let base: string;
  let port: number;

  before(async () => {
    upstream = echoUpstream();
    const upstreamUrl = await listen(upstream);
    app = gateway({
      COUNTER_URL: upstreamUrl,
      IMAGES_URL: upstreamUrl,
      BODY_LIMIT_BYTES: '1000',
      UPLOAD_LIMIT_BYTES: '5000',
      IMPORT_LIMIT_BYTES: '9000',
      MAX_URL_BYTES: '300',
      MAX_HEADER_BYTES: '2048',
      HEADERS_TIMEOUT_MS: '400',
      UPSTREAM_TIMEOUT_MS: '200',
      IDLE_TIMEOUT_MS: '600',
    });
    base = await listen(app);
    port = Number(new URL(base).port);
  });

  after(async () => {
    await app.close();
    await upstream.close();
  });

  test('a body declared larger than the limit gets 413 JSON before any of it is sent', async () => {
    const res = await raw(
      port,
      `POST /counter/echo/big HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorized.authorization}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 1001\r\n\r\n',
    );
    assert.equal(res.statusCode, 413);
    assert.equal(res.headers.connection, 'close');
    const body = JSON.parse(res.body);
    assert.equal(body.code, 'BODY_TOO_LARGE');
    assert.equal(
      body.message,
      'The request body of 1001 bytes is larger than 1000 bytes, the limit for request bodies here; send a smaller one',
    );
    expectSecurityHeaders(res.headers, '413');
  });

  test('a body at the limit passes through whole', async () => {
    const payload = 'x'.repeat(1000);
    const res = await app.inject({ method: 'POST', url: '/counter/echo/ok', headers: authorized, payload });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().body, payload);
  });

  test('a chunked body is counted as it streams and cut off with 413 once past the limit', async () => {
    const chunks = Array.from({ length: 6 }, () => Buffer.alloc(300, 97));
    const res = await postChunked(base, '/counter/echo/chunked', chunks);
    assert.equal(res.statusCode, 413);
    assert.equal(JSON.parse(res.body).code, 'BODY_TOO_LARGE');
    const small = await postChunked(base, '/counter/echo/chunked', [Buffer.from('abc'), Buffer.from('def')]);
    assert.equal(small.statusCode, 200);
    assert.equal(JSON.parse(small.body).body, 'abcdef');
  });

  test('image uploads and imports under /images get their own larger limits; JSON there does not', async () => {
    const upload = (url: string, bytes: number, type: string) =>
      app.inject({
        method: 'POST',
        url,
        headers: { ...authorized, 'content-type': type },
        payload: Buffer.alloc(bytes, 1),
      });
    assert.equal((await upload('/images', 4000, 'image/png')).statusCode, 200);
    const tooBig = await upload('/images', 5001, 'image/png');
    assert.equal(tooBig.statusCode, 413);
    assert.match(tooBig.json().message, /5000 bytes, the limit for image uploads/);
    assert.equal((await upload('/images/imports', 8000, 'multipart/form-data; boundary=x')).statusCode, 200);
    assert.match((await upload('/images/imports', 9001, 'multipart/form-data; boundary=x')).json().message, /imports/);
    assert.equal((await upload('/images/abc', 2000, 'application/json')).statusCode, 413);
    assert.equal((await upload('/counter/echo/x', 2000, 'image/png')).statusCode, 413, 'only /images takes uploads');
  });

  test('a URL longer than MAX_URL_BYTES gets 414 JSON', async () => {
    const path = `/counter/echo/${'a'.repeat(300)}`;
    const res = await app.inject({ url: path });
    assert.equal(res.statusCode, 414);
    assert.equal(res.json().code, 'URL_TOO_LONG');
    assert.match(res.json().message, /^The URL has 314 bytes, more than the 300 allowed/);
    expectSecurityHeaders(res.headers, '414');
    assert.equal((await app.inject({ url: `/counter/echo/${'a'.repeat(280)}` })).statusCode, 200);
  });

  test('headers larger than MAX_HEADER_BYTES get 431 JSON with the security headers, then the connection closes', async () => {
    const res = await raw(port, `GET /counter/echo/h HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(3000)}\r\n\r\n`);
    assert.equal(res.statusCode, 431);
    const body = JSON.parse(res.body);
    assert.equal(body.code, 'HEADERS_TOO_LARGE');
    assert.match(body.message, /larger than 2048 bytes; send fewer or shorter headers/);
    expectSecurityHeaders(res.headers, '431');
  });

  test('a client that sends its headers slowly (slowloris) gets 408 and is cut off within the headers timeout', async () => {
    const res = await raw(port, 'GET /counter/echo/slow HTTP/1.1\r\nHost: x\r\n', { drip: 'X-A: b\r\n', everyMs: 50 });
    assert.equal(res.statusCode, 408);
    assert.equal(JSON.parse(res.body).code, 'REQUEST_TIMEOUT');
    // HEADERS_TIMEOUT_MS is 400, checked every 100 ms
    assert.ok(res.closedAfterMs < 1500, `closed after ${Math.round(res.closedAfterMs)} ms`);
  });

  test('a connection that goes quiet in the middle of a body is closed after IDLE_TIMEOUT_MS', async () => {
    const res = await raw(
      port,
      `POST /counter/echo/stall HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorized.authorization}\r\n` +
        'Content-Length: 100\r\n\r\n0123456789',
    );
    assert.ok(res.closedAfterMs >= 500 && res.closedAfterMs < 2500, `closed after ${Math.round(res.closedAfterMs)} ms`);
  });

  test('errors, 404s and forwarded answers all carry the security headers', async () => {
    const answers = {
      forwarded: await app.inject({ url: '/counter/echo/ok' }),
      '404': await app.inject({ url: '/nowhere' }),
      '401': await app.inject({ method: 'POST', url: '/counter/echo/x' }),
      '400': await app.inject({ url: '/counter/%zz' }),
      '504': await app.inject({ url: '/counter/slow' }),
      '503': await app.inject({ url: '/jokes' }),
      healthz: await app.inject({ url: '/healthz' }),
    };
    assert.equal(answers['504'].statusCode, 504);
    for (const [what, res] of Object.entries(answers)) expectSecurityHeaders(res.headers, what);
  });

  test('SECURITY_HEADERS_ENABLED=false leaves them out', async () => {
    const plain = gateway({ COUNTER_URL: '', SECURITY_HEADERS_ENABLED: 'false' });
    try {
      const res = await plain.inject({ url: '/nowhere' });
      assert.equal(res.headers['x-content-type-options'], undefined);
      assert.equal(res.headers['content-security-policy'], undefined);
    } finally {
      await plain.close();
    }
  });
});
