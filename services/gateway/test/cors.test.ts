import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { parseOrigins } from '../src/cors.ts';
import { echoUpstream, gateway, listen } from './helpers.ts';

const APP = 'https://app.example.com';

describe('CORS', () => {
  let upstream: FastifyInstance;
  let upstreamUrl: string;

  before(async () => {
    upstream = echoUpstream();
    upstreamUrl = await listen(upstream);
  });

  after(async () => {
    await upstream.close();
  });

  test('by default no origin is allowed: no CORS headers, and OPTIONS goes to the service', async () => {
    const app = gateway({ COUNTER_URL: upstreamUrl });
    try {
      const res = await app.inject({ url: '/counter/echo/c', headers: { origin: APP } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
      const preflight = await app.inject({
        method: 'OPTIONS',
        url: '/counter/echo/c',
        headers: { origin: APP, 'access-control-request-method': 'POST' },
      });
      assert.equal(preflight.headers['access-control-allow-origin'], undefined);
    } finally {
      await app.close();
    }
  });

  describe('with CORS_ORIGINS set', () => {
    let app: FastifyInstance;

    before(async () => {
      app = gateway({ COUNTER_URL: upstreamUrl, CORS_ORIGINS: `${APP}, http://localhost:5173` });
      await app.ready();
    });

    after(async () => {
      await app.close();
    });

    test('a listed origin may read answers, and sees the rate-limit and request-id headers', async () => {
      const res = await app.inject({ url: '/counter/echo/c', headers: { origin: APP } });
      assert.equal(res.headers['access-control-allow-origin'], APP);
      assert.match(String(res.headers['access-control-expose-headers']), /ratelimit.*retry-after.*x-request-id/);
      assert.match(String(res.headers.vary), /Origin/);
    });

    test('Vary keeps Origin next to what the service varies on', async () => {
      const res = await app.inject({ url: '/counter/varies', headers: { origin: APP } });
      assert.equal(res.headers.vary, 'Origin, Accept-Encoding');
    });

    test('an origin not on the list gets no CORS headers', async () => {
      const res = await app.inject({ url: '/counter/echo/c', headers: { origin: 'https://evil.example' } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    });

    test('a preflight for a write is answered at the gateway, before the token check', async () => {
      const res = await app.inject({
        method: 'OPTIONS',
        url: '/counter/echo/c',
        headers: {
          origin: APP,
          'access-control-request-method': 'DELETE',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
      assert.equal(res.statusCode, 204);
      assert.equal(res.headers['access-control-allow-origin'], APP);
      assert.match(String(res.headers['access-control-allow-methods']), /DELETE/);
      assert.match(String(res.headers['access-control-allow-headers']), /authorization/);
      assert.equal(res.headers['access-control-max-age'], '600');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
    });
  });

  test('CORS_ORIGINS takes exact origins or "*", and names a bad entry', () => {
    assert.deepEqual(parseOrigins(''), []);
    assert.deepEqual(parseOrigins(`${APP},*`), [APP, '*']);
    assert.throws(
      () => parseOrigins('app.example.com'),
      (err: Error) => err instanceof ConfigError && err.message.startsWith('CORS_ORIGINS has "app.example.com"'),
    );
  });
});
