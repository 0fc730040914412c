// The bad-input campaign: thousands of generated malformed requests across every route of the merged
// OpenAPI document, sent through a real gateway to the real services (separate processes on their own
// test database, key prefix and stream). Replay a failure with BAD_INPUT_SEED=<the seed it printed>.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { Agent, request } from 'undici';
import { describeTail, Stack } from '../bench/lib/stack.ts';
import { numberedPng } from '../services/images/test/helpers/images.ts';
import {
  brokenJson,
  encodePart,
  hostile,
  hostileValue,
  type Target,
  targets,
  toJson,
  truncatedMultipart,
  wrongContentType,
} from './helpers/bad-input.ts';
import { type BerthData, openBerthData, startBerthStack } from './helpers/berth-stack.ts';

const TOKEN = 'bad-input-campaign-token-0123456789';
const BATCH = 50;
const BATCHES = 42;
const SEED = Number(process.env.BAD_INPUT_SEED ?? Math.floor(Math.random() * 2 ** 31));

interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** What was wrong with it, for the failure message. */
  what: string;
}

describe('bad-input campaign through the gateway', () => {
  const stack = new Stack();
  const agent = new Agent({ connections: 4, headersTimeout: 15_000, bodyTimeout: 15_000 });
  let data: BerthData | undefined;
  let prefix: string;
  let redis: BerthData['redis'];
  let jokesPool: pg.Pool;
  let imagesPool: pg.Pool;
  let dir: string;
  let base: string;
  const known: Record<string, string> = {};

  before(async () => {
    data = await openBerthData();
    ({ prefix, redis } = data);
    jokesPool = new pg.Pool({ connectionString: data.jokes.url, max: 1 });
    imagesPool = new pg.Pool({ connectionString: data.images.url, max: 1 });
    dir = await mkdtemp(join(tmpdir(), 'berth-bad-input-'));
    base = await startBerthStack(stack, data, {
      imagesDir: dir,
      images: { MAX_UPLOAD_BYTES: String(1024 * 1024) },
      gateway: { API_TOKENS: TOKEN, RATE_LIMIT_MAX: '1000000' },
    });

    // something for the valid ids to point at
    const auth = { authorization: `Bearer ${TOKEN}` };
    const upload = await fetch(`${base}/images?dataset=fuzz&label=cat`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'image/png' },
      body: await numberedPng(1),
    });
    assert.equal(upload.status, 201, await upload.clone().text());
    known.image = ((await upload.json()) as { id: string }).id;
    const jokes = (await (await fetch(`${base}/jokes?limit=1`)).json()) as { items: { id: number }[] };
    known.joke = String(jokes.items[0]?.id);
    await fetch(`${base}/counter/fuzz/increment`, { method: 'POST', headers: auth });
  });

  after(async () => {
    await stack.stop();
    await agent.close();
    await Promise.all([jokesPool?.end(), imagesPool?.end()]);
    await Promise.all([data?.close(), rm(dir, { recursive: true, force: true })]);
  });

  /** Everything a refused write must leave as it was: jokes, images, import jobs and counters. */
  async function snapshot(): Promise<string> {
    const digest = (table: string) =>
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h FROM ${table} t`;
    const [jokes, images, jobs] = await Promise.all([
      jokesPool.query(digest('jokes')),
      imagesPool.query(digest('images')),
      imagesPool.query(digest('import_jobs')),
    ]);
    const keys = (await redis.keys(`${prefix}counter:*`)).sort();
    const values = keys.length > 0 ? await redis.mget(...keys) : [];
    return JSON.stringify([jokes.rows[0], images.rows[0], jobs.rows[0], keys, values]);
  }

  /** A valid value for a path parameter, so some requests get past the path and into the handler. */
  function validParam(path: string, name: string): string {
    if (path.startsWith('/jokes')) return known.joke as string;
    if (path.startsWith('/counter')) return 'fuzz';
    if (name === 'name') return 'fuzz';
    return path.startsWith('/images/imports') ? '0190f1b2-7c3d-7a4e-8f00-000000000000' : (known.image as string);
  }

  /** Generated requests against one operation. */
  function requestsFor(target: Target): fc.Arbitrary<Sent> {
    const fieldName = fc.oneof(
      { weight: 4, arbitrary: target.jsonFields?.length ? fc.constantFrom(...target.jsonFields) : hostile },
      { weight: 1, arbitrary: hostile },
    );
    const body = fc.oneof(
      { weight: 2, arbitrary: fc.constant({ kind: 'none' as const }) },
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('json' as const),
          value: fc.dictionary(fieldName, hostileValue, { maxKeys: 4 }),
        }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('broken' as const), text: brokenJson }) },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant('wrong-type' as const), type: wrongContentType, text: hostile }),
      },
      {
        weight: target.otherBodies.length ? 3 : 1,
        arbitrary: fc.record({
          kind: fc.constant('truncated-multipart' as const),
          keep: fc.double({ min: 0.05, max: 0.98, noNaN: true }),
          dataset: fc.oneof(fc.constant('fuzz'), hostile),
        }),
      },
    );
    return fc
      .record({
        method: fc.oneof(
          { weight: 4, arbitrary: fc.constant(target.method) },
          { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD') },
        ),
        params: fc.array(fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: hostile }), {
          minLength: target.pathParams.length,
          maxLength: target.pathParams.length,
        }),
        raw: fc.boolean(),
        query: fc.dictionary(
          fc.oneof(target.queryParams.length ? fc.constantFrom(...target.queryParams) : hostile, hostile),
          hostile,
          { maxKeys: 3 },
        ),
        body,
        auth: fc.constantFrom('valid', 'valid', 'valid', 'none', 'wrong'),
        extra: fc.oneof(
          { weight: 12, arbitrary: fc.constant('none') },
          { weight: 1, arbitrary: fc.constantFrom('oversized-header', 'long-url', 'odd-accept', 'odd-range') },
        ),
        file: fc.integer({ min: 0, max: 3 }),
      })
      .map((r) => {
        let path = target.path;
        target.pathParams.forEach((name, i) => {
          const given = r.params[i];
          const value =
            given === null || given === undefined ? validParam(target.path, name) : encodePart(given, r.raw);
          path = path.replace(`{${name}}`, value);
        });
        const query = Object.entries(r.query).map(([k, v]) => `${encodePart(k, false)}=${encodePart(v, r.raw)}`);
        if (r.extra === 'long-url') query.push(`pad=${'a'.repeat(9000)}`);
        const headers: Record<string, string> = {};
        if (r.auth === 'valid') headers.authorization = `Bearer ${TOKEN}`;
        if (r.auth === 'wrong') headers.authorization = 'Bearer not-a-token';
        if (r.extra === 'oversized-header') headers['x-filler'] = 'f'.repeat(20_000);
        if (r.extra === 'odd-accept') headers.accept = 'text/plain;q=abc, */*;q=2, text/event-stream;q=-1';
        if (r.extra === 'odd-range') headers.range = 'bytes=99999999999999999999-1, -0, 5-3';
        let bodyBytes: Buffer | undefined;
        let what: string = r.body.kind;
        if (r.body.kind === 'json') {
          bodyBytes = Buffer.from(toJson(r.body.value));
          headers['content-type'] = 'application/json';
        } else if (r.body.kind === 'broken') {
          bodyBytes = Buffer.from(r.body.text);
          headers['content-type'] = 'application/json';
        } else if (r.body.kind === 'wrong-type') {
          bodyBytes = Buffer.from(r.body.text);
          headers['content-type'] = r.body.type;
          what = `${what} ${r.body.type}`;
        } else if (r.body.kind === 'truncated-multipart') {
          const png = PNGS[r.file] as Buffer;
          const cut = truncatedMultipart(png, { dataset: r.body.dataset, label: 'cat' }, r.body.keep);
          bodyBytes = cut.body;
          headers['content-type'] = cut.contentType;
        }
        // GET and HEAD bodies are not sent by clients; undici refuses them
        if (r.method === 'GET' || r.method === 'HEAD') {
          bodyBytes = undefined;
          delete headers['content-type'];
        }
        return {
          method: r.method,
          url: `${path}${query.length ? `?${query.join('&')}` : ''}`,
          headers,
          body: bodyBytes,
          what: `${what}, auth ${r.auth}, ${r.extra}`,
        };
      });
  }

  const PNGS: Buffer[] = [];

  /** Sends one request; its status, or 0 when the connection closed without an answer. */
  async function send(sent: Sent): Promise<{ status: number; text: string }> {
    try {
      const res = await request(`${base}${sent.url}`, {
        method: sent.method as 'GET',
        headers: sent.headers,
        body: sent.body,
        dispatcher: agent,
      });
      // an event stream stays open: its status is the answer
      if (String(res.headers['content-type']).startsWith('text/event-stream')) {
        // closing it early makes undici report an abort on the body, which is the point here
        res.body.on('error', () => {});
        res.body.destroy();
        return { status: res.statusCode, text: '' };
      }
      if (res.statusCode >= 500) return { status: res.statusCode, text: await res.body.text() };
      await res.body.dump({ limit: 4 << 20 });
      return { status: res.statusCode, text: '' };
    } catch (err) {
      return { status: 0, text: (err as Error).message };
    }
  }

  test('2,100 malformed requests: never a 5xx, no process exits, healthy after every batch, refused writes change nothing', async (t) => {
    t.diagnostic(`seed ${SEED} (replay with BAD_INPUT_SEED=${SEED})`);
    for (let i = 0; i < 4; i++) PNGS.push(await numberedPng(i + 2));
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as Parameters<typeof targets>[0] & {
      'x-berth-missing': string[];
    };
    assert.deepEqual(doc['x-berth-missing'], [], 'every service’s document is in the merged one');
    const exempt = new Set(['/metrics', '/openapi.json', '/healthz', '/readyz']);
    const list = targets(doc).filter((target) => !exempt.has(target.path));
    assert.ok(list.length >= 20, `${list.length} operations found`);
    const anyRequest = fc.constantFrom(...list).chain(requestsFor);

    const byClass: Record<string, number> = { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, 'no answer': 0 };
    const byStatus: Record<string, number> = {};
    const noAnswer: string[] = [];
    let sentTotal = 0;
    let state = await snapshot();

    const result = await fc.check(
      fc.asyncProperty(fc.array(anyRequest, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        for (const sent of batch) {
          const { status, text } = await send(sent);
          sentTotal++;
          const cls = status === 0 ? 'no answer' : `${Math.floor(status / 100)}xx`;
          byClass[cls] = (byClass[cls] ?? 0) + 1;
          byStatus[status] = (byStatus[status] ?? 0) + 1;
          const where = `${sent.method} ${sent.url.slice(0, 300)} (${sent.what})`;
          assert.ok(status < 500, `${where} answered ${status}: ${text.slice(0, 500)}`);
          if (status === 0) noAnswer.push(`${where}: ${text}`);
          const refused = status >= 400 || status === 0;
          if (refused && ['POST', 'PUT', 'PATCH', 'DELETE'].includes(sent.method)) {
            assert.equal(await snapshot(), state, `${where} was refused (${status}) yet changed data`);
          } else if (!refused) {
            // an accepted request may change data (GET / counts a visit): the new state is the baseline
            state = await snapshot();
          }
        }
        const crashed = stack.crashed();
        assert.deepEqual(
          crashed.map((p) => p.spec.name),
          [],
          `exited: ${crashed.map((p) => `${p.spec.name}\n${describeTail(p)}`).join('\n')}`,
        );
        const ready = await fetch(`${base}/readyz`);
        assert.equal(ready.status, 200, await ready.text());
      }),
      { seed: SEED, numRuns: BATCHES, endOnFailure: true },
    );
    // the failing request is named in the error; fast-check's report would print the whole batch
    if (result.failed)
      throw Object.assign(result.errorInstance as Error, {
        message: `seed ${SEED}: ${(result.errorInstance as Error).message}`,
      });

    t.diagnostic(`sent ${sentTotal}: ${JSON.stringify(byClass)}; by status ${JSON.stringify(byStatus)}`);
    assert.ok(sentTotal >= 2000, `${sentTotal} requests sent`);
    // the gateway closes the connection on a refused upload it will not read; an answer still comes first
    assert.deepEqual(noAnswer, [], 'every request got an answer');
  });
});
