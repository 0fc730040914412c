import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { counterApp, deleteKeys, plainRedis, testPrefix } from '../../counter/test/helpers.ts';
import { closedPort, echoUpstream, gateway, listen } from './helpers.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('GET /openapi.json merges the services’ documents', () => {
  const prefix = testPrefix();
  const apps: FastifyInstance[] = [];
  let counterUrl: string;
  let imagesPort: number;

  before(async () => {
    const counter = counterApp({ REDIS_KEY_PREFIX: prefix }).app;
    apps.push(counter);
    counterUrl = await listen(counter);
    imagesPort = await closedPort();
  });

  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    const redis = plainRedis();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  test('the gateway’s routes and a reachable service’s are in; a service down is named as missing', async () => {
    const app = gateway({ COUNTER_URL: counterUrl, IMAGES_URL: `http://127.0.0.1:${imagesPort}` });
    apps.push(app);
    const res = await app.inject('/openapi.json');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const doc = res.json();
    assert.equal(doc.openapi, '3.0.3');
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/', '/counter/{name}']) {
      assert.ok(doc.paths[path], `${path} is described`);
    }
    assert.ok(!Object.keys(doc.paths).some((p) => p.includes('*')), 'no forwarding wildcard is described');
    assert.deepEqual(doc.paths['/counter/{name}'].get.tags, ['counter']);
    assert.deepEqual(doc.paths['/healthz'].get.tags, ['gateway']);
    assert.deepEqual(doc['x-berth-missing'], ['images']);
    assert.equal(doc['x-berth-services'].images.status, 'missing');
    assert.equal(doc['x-berth-services'].jokes.status, 'not deployed');
    assert.match(doc.info.description, /could not be reached: images/);
  });

  test('writes carry the bearer scheme and the 401 and 403 the gateway gives; reads do not', async () => {
    const app = gateway({ COUNTER_URL: counterUrl });
    apps.push(app);
    const doc = (await app.inject('/openapi.json')).json();
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, {
      type: 'http',
      scheme: 'bearer',
      description: doc.components.securitySchemes.bearerAuth.description,
    });
    const increment = doc.paths['/counter/{name}/increment'].post;
    assert.deepEqual(increment.security, [{ bearerAuth: [] }]);
    assert.ok(increment.responses['401'] && increment.responses['403']);
    assert.ok(doc.paths['/counter/{name}'].delete.security);
    assert.equal(doc.paths['/counter/{name}'].get.security, undefined);
    assert.equal(doc.paths['/counter/{name}'].get.responses['401'], undefined);
    assert.deepEqual(doc['x-berth-missing'], []);
  });

  test('a service that comes up later is included at the next ask', async () => {
    const app = gateway({ COUNTER_URL: `http://127.0.0.1:${imagesPort}` });
    apps.push(app);
    assert.deepEqual((await app.inject('/openapi.json')).json()['x-berth-missing'], ['counter']);
    const late = counterApp({ REDIS_KEY_PREFIX: prefix }).app;
    apps.push(late);
    await late.listen({ port: imagesPort, host: '127.0.0.1' });
    // a missing document is asked for again at most every 2 s
    await sleep(2100);
    const doc = (await app.inject('/openapi.json')).json();
    assert.deepEqual(doc['x-berth-missing'], []);
    assert.ok(doc.paths['/counter/{name}']);
  });

  test('a service that goes down keeps the document it gave, marked stale', async () => {
    const upstream = counterApp({ REDIS_KEY_PREFIX: prefix }).app;
    const url = await listen(upstream);
    const app = gateway({ COUNTER_URL: url, OPENAPI_REFRESH_MS: '0' });
    apps.push(app);
    assert.ok((await app.inject('/openapi.json')).json().paths['/counter/{name}']);
    await upstream.close();
    await app.listen({ port: 0, host: '127.0.0.1' });
    // listening starts a fetch of every document, which the next ask waits for
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
      'x-berth-services': Record<string, { status: string }>;
      'x-berth-missing': string[];
    };
    assert.ok(doc.paths['/counter/{name}'], 'the last document is kept');
    assert.equal(doc['x-berth-services'].counter?.status, 'stale');
    assert.deepEqual(doc['x-berth-missing'], []);
  });

  test('an upstream whose document is not JSON with paths counts as missing', async () => {
    const echo = echoUpstream();
    apps.push(echo);
    const app = gateway({ COUNTER_URL: '', IMAGES_URL: await listen(echo) });
    apps.push(app);
    const doc = (await app.inject('/openapi.json')).json();
    assert.deepEqual(doc['x-berth-missing'], ['images']);
    assert.match(doc['x-berth-services'].images.error, /without paths/);
  });
});

describe('/docs', () => {
  let app: FastifyInstance;
  before(async () => {
    app = gateway({ COUNTER_URL: '' });
    await app.ready();
  });
  after(() => app.close());

  test('serves swagger-ui from the gateway itself, reading the merged document', async () => {
    const page = await app.inject('/docs/');
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    assert.ok(refs.length >= 4, refs.join(', '));
    for (const ref of refs) {
      assert.ok(!/^(https?:)?\/\//.test(ref), `"${ref}" is served by the gateway`);
      const asset = await app.inject(new URL(ref, 'http://gateway/docs/').pathname);
      assert.equal(asset.statusCode, 200, ref);
    }
    const spec = await app.inject('/docs/json');
    assert.equal(spec.json().info.title, 'berth');
    assert.ok(spec.json().paths['/openapi.json']);
  });

  test('its Content-Security-Policy allows the gateway’s own sources only', async () => {
    const csp = String((await app.inject('/docs/')).headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /https:|swagger\.io|upgrade-insecure-requests/);
    // the API keeps the policy that lets nothing load
    assert.match(String((await app.inject('/healthz')).headers['content-security-policy']), /default-src 'none'/);
  });
});
