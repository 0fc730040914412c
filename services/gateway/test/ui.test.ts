import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { UI_POLICY } from '../src/routes/ui.ts';
import { gateway } from './helpers.ts';

const INDEX = '<!doctype html><title>berth</title><script type="module" src="/ui/assets/index-AbC123.js"></script>';
const SCRIPT = 'console.log("berth");\n';

describe('the web page at /ui/', () => {
  let dir: string;
  let app: FastifyInstance;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-ui-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), INDEX);
    await writeFile(join(dir, 'assets', 'index-AbC123.js'), SCRIPT);
    await writeFile(join(dir, '.env'), 'SECRET=1\n');
    app = gateway({ COUNTER_URL: '', UI_DIR: dir });
    await app.ready();
  });

  after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('GET /ui redirects to /ui/, keeping the query', async () => {
    const bare = await app.inject('/ui');
    assert.equal(bare.statusCode, 301);
    assert.equal(bare.headers.location, '/ui/');
    const withQuery = await app.inject('/ui?from=mail');
    assert.equal(withQuery.headers.location, '/ui/?from=mail');
  });

  test('GET /ui/ serves index.html, revalidated on every load, under the page policy', async () => {
    const res = await app.inject('/ui/');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.equal(res.body, INDEX);
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.equal(res.headers['content-security-policy'], UI_POLICY);
    assert.match(UI_POLICY, /script-src 'self'/);
    assert.doesNotMatch(UI_POLICY, /unsafe-inline|https?:/);
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const etag = String(res.headers.etag);
    const again = await app.inject({ url: '/ui/', headers: { 'if-none-match': etag } });
    assert.equal(again.statusCode, 304);
  });

  test('hashed assets are cached for a year', async () => {
    const res = await app.inject('/ui/assets/index-AbC123.js');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /javascript/);
    assert.equal(res.body, SCRIPT);
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
  });

  test('a missing file, a dotfile or a path out of the folder is refused in JSON and not cached', async () => {
    for (const url of [
      '/ui/assets/nope.js',
      '/ui/.env',
      '/ui/..%2f..%2fetc%2fpasswd',
      '/ui/%2e%2e/%2e%2e/package.json',
    ]) {
      const res = await app.inject(url);
      assert.ok([400, 403, 404].includes(res.statusCode), `${url}: ${res.statusCode}`);
      assert.equal(res.json().statusCode, res.statusCode, url);
      assert.equal(res.headers['cache-control'], undefined, url);
      assert.doesNotMatch(res.body, /SECRET|root:|"name"/, url);
    }
  });

  test('the API keeps its own policy that lets nothing load', async () => {
    const res = await app.inject('/healthz');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
  });

  test('writes to /ui/ are not routes', async () => {
    const res = await app.inject({ method: 'POST', url: '/ui/', payload: {} });
    assert.equal(res.statusCode, 404);
  });
});

describe('the web page when it is not built', () => {
  test('GET /ui/ answers 503 saying how to build it, and the gateway still starts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-ui-empty-'));
    const app = gateway({ COUNTER_URL: '', UI_DIR: dir });
    try {
      await app.ready();
      for (const url of ['/ui/', '/ui/assets/index-AbC123.js']) {
        const res = await app.inject(url);
        assert.equal(res.statusCode, 503, url);
        assert.equal(res.json().code, 'UI_NOT_BUILT');
        assert.match(res.json().message, /npm run build -w web/);
      }
      assert.equal((await app.inject('/healthz')).statusCode, 200);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
