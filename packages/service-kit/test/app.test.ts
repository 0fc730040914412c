import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createService } from '../src/index.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function buildDemo(name: string): FastifyInstance {
  const app = createService({ name, logLevel: 'silent' });
  app.get('/things/:id', async (request) => ({ id: (request.params as { id: string }).id, requestId: request.id }));
  return app;
}

describe('request ids', () => {
  let app: FastifyInstance;
  before(async () => {
    app = buildDemo('demo');
    await app.ready();
  });
  after(() => app.close());

  test('a sane x-request-id is used for the request and echoed', async () => {
    const res = await app.inject({ url: '/things/1', headers: { 'x-request-id': 'gw-1a2b.3c:4_d' } });
    assert.equal(res.headers['x-request-id'], 'gw-1a2b.3c:4_d');
    assert.equal(res.json().requestId, 'gw-1a2b.3c:4_d');
  });

  test('a missing x-request-id gets a generated one', async () => {
    const res = await app.inject('/things/1');
    assert.match(String(res.headers['x-request-id']), UUID);
    assert.equal(res.json().requestId, res.headers['x-request-id']);
  });

  test('an x-request-id that is too long is replaced', async () => {
    const res = await app.inject({ url: '/things/1', headers: { 'x-request-id': 'a'.repeat(500) } });
    assert.match(String(res.headers['x-request-id']), UUID);
  });

  test('an x-request-id with spaces or markup is replaced', async () => {
    for (const given of ['two words', '<script>', 'a\tb', '']) {
      const res = await app.inject({ url: '/things/1', headers: { 'x-request-id': given } });
      assert.match(String(res.headers['x-request-id']), UUID, `"${given}" should have been replaced`);
    }
  });

  test('each request without an id gets a different one', async () => {
    const [a, b] = await Promise.all([app.inject('/things/1'), app.inject('/things/1')]);
    assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
  });

  test('the request id is echoed on errors too', async () => {
    const res = await app.inject({ url: '/missing', headers: { 'x-request-id': 'err-42' } });
    assert.equal(res.statusCode, 404);
    assert.equal(res.headers['x-request-id'], 'err-42');
  });
});

describe('GET /metrics', () => {
  let app: FastifyInstance;
  before(async () => {
    app = buildDemo('demo');
    await app.ready();
  });
  after(() => app.close());

  test('is Prometheus text with request durations labelled by route and service', async () => {
    await app.inject('/things/7');
    const res = await app.inject('/metrics');
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(res.body, /^# HELP http_request_duration_seconds /m);
    assert.match(res.body, /^# TYPE http_request_duration_seconds histogram$/m);
    const line = res.body.split('\n').find((l) => l.startsWith('http_request_duration_seconds_count{'));
    assert.ok(line, 'a count line for the request made');
    assert.match(line, /method="GET"/);
    assert.match(line, /route="\/things\/:id"/);
    assert.match(line, /status_code="200"/);
    assert.match(line, /service="demo"/);
  });

  test('includes the default process metrics', async () => {
    const res = await app.inject('/metrics');
    assert.match(res.body, /^process_cpu_user_seconds_total\{service="demo"\} /m);
    assert.match(res.body, /^nodejs_eventloop_lag_seconds\{service="demo"\} /m);
  });

  test('unknown paths share one route label instead of one series per path', async () => {
    await Promise.all(['/x/1', '/x/2', '/y'].map((url) => app.inject(url)));
    const res = await app.inject('/metrics');
    assert.match(res.body, /route="unmatched"/);
    assert.doesNotMatch(res.body, /route="\/x\/1"/);
  });

  test('two apps in one process keep their own registries', async () => {
    const other = buildDemo('other');
    try {
      await other.inject('/things/1');
      const mine = (await app.inject('/metrics')).body;
      const theirs = (await other.inject('/metrics')).body;
      assert.match(theirs, /service="other"/);
      assert.doesNotMatch(theirs, /service="demo"/);
      assert.doesNotMatch(mine, /service="other"/);
    } finally {
      await other.close();
    }
  });
});
