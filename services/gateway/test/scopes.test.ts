import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigError, logUrl } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { parseTokens } from '../src/tokens.ts';
import { echoUpstream, gateway, listen } from './helpers.ts';

const READER = 'reader-token-0123456789';
const WRITER = 'writer-token-0123456789';
const ADMIN = 'admin-token-0123456789ab';
const tokens = [`read:${READER}`, `write:${WRITER}`, `admin:${ADMIN}`];
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('token scopes, and reads that need a token', () => {
  let upstream: FastifyInstance;
  let app: FastifyInstance;

  before(async () => {
    upstream = echoUpstream();
    const upstreamUrl = await listen(upstream);
    app = gateway({ COUNTER_URL: upstreamUrl, READS_REQUIRE_TOKEN: 'true', METRICS_REQUIRE_TOKEN: 'true' }, { tokens });
    await app.ready();
  });

  after(async () => {
    await app.close();
    await upstream.close();
  });

  test('with READS_REQUIRE_TOKEN a read without a token is a 401 that says which scope it needs', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await app.inject({ method, url: '/counter/echo/r' });
      assert.equal(res.statusCode, 401, method);
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="berth"');
    }
    const res = await app.inject({ url: '/counter/echo/r' });
    assert.equal(res.json().code, 'TOKEN_REQUIRED');
    assert.match(
      res.json().message,
      /^GET needs an API token with the "read" scope here \(READS_REQUIRE_TOKEN is on\)/,
    );
    assert.equal((await app.inject({ method: 'OPTIONS', url: '/counter/echo/r' })).statusCode, 200, 'preflights pass');
    for (const open of ['/healthz', '/readyz', '/openapi.json']) {
      assert.notEqual((await app.inject({ url: open })).statusCode, 401, open);
    }
  });

  test('a read token reads, in the header or as ?access_token=, which is not passed on', async () => {
    assert.equal((await app.inject({ url: '/counter/echo/r', headers: bearer(READER) })).statusCode, 200);
    const res = await app.inject({ url: `/counter/echo/r?x=1&access_token=${READER}&y=2` });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().url, '/counter/echo/r?x=1&y=2');
    const only = await app.inject({ url: `/counter/echo/r?access_token=${READER}` });
    assert.equal(only.json().url, '/counter/echo/r');
    assert.equal(
      logUrl(`/images/events?access_token=${READER}&since=4`),
      '/images/events?access_token=[redacted]&since=4',
    );
    assert.equal((await app.inject({ url: '/counter/echo/r?access_token=wrong-token-0123456789' })).statusCode, 403);
    for (const broken of ['%zz', '%E0%A4']) {
      const res = await app.inject({ url: `/counter/echo/r?access_token=${broken}` });
      assert.equal(res.statusCode, 403, `${broken}: not a 500`);
    }
  });

  test('a read token cannot write; write and admin tokens read and write', async () => {
    const refused = await app.inject({ method: 'POST', url: '/counter/echo/w', headers: bearer(READER) });
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().code, 'TOKEN_SCOPE');
    assert.match(refused.json().message, /^The API token may read; POST \/counter\/echo\/w needs the "write" scope/);
    for (const token of [WRITER, ADMIN]) {
      assert.equal(
        (await app.inject({ method: 'POST', url: '/counter/echo/w', headers: bearer(token) })).statusCode,
        200,
      );
      assert.equal((await app.inject({ url: '/counter/echo/r', headers: bearer(token) })).statusCode, 200);
    }
    const query = await app.inject({ method: 'POST', url: `/counter/echo/w?access_token=${WRITER}` });
    assert.equal(query.statusCode, 401, 'a write never takes its token from the URL');
  });

  test('with METRICS_REQUIRE_TOKEN /metrics needs the admin scope', async () => {
    assert.equal((await app.inject({ url: '/metrics' })).statusCode, 401);
    assert.equal((await app.inject({ url: '/metrics', headers: bearer(WRITER) })).statusCode, 403);
    assert.equal((await app.inject({ url: '/metrics', headers: bearer(ADMIN) })).statusCode, 200);
  });

  test('reads stay open by default, and a bare token may do everything', async () => {
    const { port } = upstream.server.address() as { port: number };
    const open = gateway({ COUNTER_URL: `http://127.0.0.1:${port}` }, { tokens: [WRITER] });
    try {
      assert.equal((await open.inject({ url: '/counter/echo/r' })).statusCode, 200);
      assert.equal((await open.inject({ url: '/metrics' })).statusCode, 200);
      assert.equal(
        (await open.inject({ method: 'DELETE', url: '/counter/echo/d', headers: bearer(WRITER) })).statusCode,
        200,
      );
    } finally {
      await open.close();
    }
  });

  test('a scope that does not exist, or token settings without auth, stop the start naming the variable', () => {
    assert.throws(
      () => parseTokens(`reed:${READER}`, 'API_TOKENS'),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /API_TOKENS gives a token the scope "reed"; scopes are admin, write, read/);
        return true;
      },
    );
    assert.throws(
      () => gateway({ AUTH_ENABLED: 'false', READS_REQUIRE_TOKEN: 'true' }),
      /READS_REQUIRE_TOKEN and METRICS_REQUIRE_TOKEN need AUTH_ENABLED on/,
    );
  });
});
