// The hostile-client campaign: the attacks of issue 20's findings, repeated against a real gateway in
// front of real counter, jokes and images processes (their own database, key prefix and stream; the
// images volume a private tmpfs, which needs root). Each attack counts what it sent and what came
// back, fails on any 5xx it did not ask for, and times how long until every service answers again.
// The figures go to test-results/hostile/figures.json and into the README's Security table.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'nats';
import sharp from 'sharp';
import { Agent, request } from 'undici';
import { describeTail, Stack } from '../bench/lib/stack.ts';
import { bytesFrom, writeIdx } from '../services/images/test/helpers/datasets.ts';
import { NATS_URL } from '../services/images/test/helpers/events.ts';
import { type BerthData, openBerthData, startBerthStack } from './helpers/berth-stack.ts';

const TOKEN = 'hostile-campaign-token-0123456789abc';
const auth = { authorization: `Bearer ${TOKEN}` };
const root = new URL('..', import.meta.url).pathname;
const MiB = 1024 * 1024;

/** What one attack did and what it found. */
interface Figures {
  attack: string;
  finding: number;
  requests: number;
  statuses: Record<string, number>;
  /** 5xx answers the attack did not expect (the campaign fails on any). */
  unexpected5xx: number;
  /** Milliseconds from the attack's end until every service answered again. */
  recoverMs: number;
  held: string;
}

/** Counts answers by status; `expected` are statuses the attack means to provoke (507 on a full disk). */
class Tally {
  readonly statuses: Record<string, number> = {};
  requests = 0;
  unexpected5xx = 0;
  readonly #expected: Set<number>;
  readonly #where: string[] = [];
  constructor(expected: number[] = []) {
    this.#expected = new Set(expected);
  }
  add(status: number, where: string): number {
    this.requests += 1;
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    if ((status >= 500 || status === 0) && !this.#expected.has(status)) {
      this.unexpected5xx += 1;
      this.#where.push(`${where} → ${status}`);
    }
    return status;
  }
  assertClean() {
    assert.deepEqual(this.#where, [], 'no 5xx and no request left unanswered');
  }
}

/** An open event stream: its status, what it has read, and a way to close it. */
interface Stream {
  status: number;
  bytes: number;
  close(): void;
}

describe('hostile-client campaign through the gateway', () => {
  const stack = new Stack();
  const agent = new Agent({ connections: 16, headersTimeout: 20_000, bodyTimeout: 20_000 });
  const figures: Figures[] = [];
  const open: Stream[] = [];
  let data: BerthData | undefined;
  let stream: BerthData['stream'];
  let volume: string;
  let work: string;
  let mounted = false;
  let base: string;

  before(async () => {
    data = await openBerthData();
    stream = data.stream;
    work = await mkdtemp(join(tmpdir(), 'berth-hostile-'));
    volume = await mkdtemp(join(tmpdir(), 'berth-hostile-volume-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', volume], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`The campaign mounts a private tmpfs as the images volume and needs root: ${err}`);
    }
    mounted = true;
    base = await startBerthStack(stack, data, {
      imagesDir: volume,
      images: { VOLUME_MIN_FREE_BYTES: String(4 * MiB) },
      gateway: {
        API_TOKENS: TOKEN,
        // each attack comes from addresses of its own (X-Forwarded-For from this trusted loopback)
        TRUSTED_PROXIES: '127.0.0.1',
        RATE_LIMIT_MAX: '2000',
      },
    });
  });

  after(async () => {
    for (const s of open.splice(0)) s.close();
    await stack.stop();
    await agent.close();
    if (mounted) execFileSync('umount', ['-l', volume]);
    await Promise.all([
      data?.close(),
      rm(volume, { recursive: true, force: true }),
      rm(work, { recursive: true, force: true }),
    ]);
    if (figures.length > 0) {
      const dir = join(root, 'test-results', 'hostile');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
    }
  });

  /** A request through the gateway as client `from`; status 0 when no answer came. */
  async function send(
    from: string,
    method: string,
    path: string,
    options: { headers?: Record<string, string>; body?: Buffer | string } = {},
  ): Promise<{ status: number; text: string; ms: number }> {
    const started = performance.now();
    try {
      const res = await request(`${base}${path}`, {
        dispatcher: agent,
        method: method as 'GET',
        headers: { 'x-forwarded-for': from, ...options.headers },
        body: options.body,
      });
      const text = await res.body.text();
      return { status: res.statusCode, text, ms: performance.now() - started };
    } catch (err) {
      return { status: 0, text: String(err), ms: performance.now() - started };
    }
  }

  /** Opens GET /images/events as client `from` on a connection of its own. */
  function openStream(from: string, path = '/images/events'): Promise<Stream> {
    return new Promise((resolve) => {
      const req = httpRequest(
        `${base}${path}`,
        { agent: false, headers: { accept: 'text/event-stream', 'x-forwarded-for': from } },
        (res) => {
          const s: Stream = { status: res.statusCode ?? 0, bytes: 0, close: () => req.destroy() };
          res.on('data', (chunk: Buffer) => {
            s.bytes += chunk.length;
          });
          res.on('error', () => {});
          resolve(s);
        },
      );
      req.on('error', () => resolve({ status: 0, bytes: 0, close: () => {} }));
      req.end();
    });
  }

  /** Milliseconds until /readyz is 200 and each service answers an ordinary read (bounded). */
  async function recovery(since: number): Promise<number> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const checks = await Promise.all([
        send('192.0.2.250', 'GET', '/readyz'),
        send('192.0.2.250', 'GET', '/images?limit=1'),
        send('192.0.2.250', 'GET', '/counter/probe'),
        send('192.0.2.250', 'GET', '/jokes?limit=1'),
      ]);
      if (checks.every((c) => c.status === 200)) return Math.round(performance.now() - since);
      assert.ok(Date.now() < deadline, `not recovered: ${checks.map((c) => `${c.status} ${c.text}`).join('; ')}`);
      await sleep(20);
    }
  }

  /** Records an attack's figures once every process is still running and the stack has recovered. */
  async function record(attack: string, finding: number, tally: Tally, ended: number, held: string) {
    const crashed = stack.crashed();
    assert.deepEqual(
      crashed.map((p) => p.spec.name),
      [],
      `exited: ${crashed.map((p) => `${p.spec.name}\n${describeTail(p)}`).join('\n')}`,
    );
    const recoverMs = await recovery(ended);
    figures.push({ attack, finding, ...tally, statuses: { ...tally.statuses }, recoverMs, held });
    tally.assertClean();
  }

  test('1: an event-stream flood neither starves ordinary requests nor goes past its caps', async () => {
    const tally = new Tally();
    // one address: 8 streams, then 429
    for (let i = 0; i < 20; i++) {
      const s = await openStream('198.18.0.1');
      open.push(s);
      tally.add(s.status, 'GET /images/events from one address');
    }
    assert.equal(tally.statuses[200], 8);
    assert.equal(tally.statuses[429], 12);
    // 150 clients, more than the 128 connections to the images service ordinary requests use
    const many = await Promise.all(Array.from({ length: 150 }, (_, i) => openStream(`198.18.1.${i + 1}`)));
    open.push(...many);
    for (const s of many) assert.equal(tally.add(s.status, 'GET /images/events'), 200);
    let slowest = 0;
    for (let i = 0; i < 20; i++) {
      const res = await send('198.18.2.1', 'GET', '/images?limit=1');
      tally.add(res.status, 'GET /images?limit=1 under the flood');
      assert.equal(res.status, 200, res.text);
      slowest = Math.max(slowest, res.ms);
    }
    assert.ok(slowest < 1000, `an ordinary request took ${Math.round(slowest)} ms under the flood`);
    const ended = performance.now();
    for (const s of open.splice(0)) s.close();
    await record(
      '158 open event streams from 151 clients',
      1,
      tally,
      ended,
      `8 per client, then 429; GET /images?limit=1 at most ${Math.round(slowest)} ms during the flood`,
    );
  });

  test('2: curl uploads over 1 MiB (Expect: 100-continue) go through', async () => {
    const tally = new Tally();
    const idx = await writeIdx(work, { count: 2000, seed: 20 });
    const curl = (args: string[]) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn('curl', ['-sS', '-H', 'x-forwarded-for: 198.18.3.1', ...args]);
        let out = '';
        child.stdout.on('data', (chunk) => {
          out += chunk;
        });
        child.on('error', reject);
        child.on('close', () => resolve(out));
      });
    const started = performance.now();
    const posted = await curl([
      '-H',
      `authorization: ${auth.authorization}`,
      '-F',
      'dataset=curl',
      '-F',
      `files=@${idx.images}`,
      '-F',
      `files=@${idx.labels}`,
      '-w',
      '\n%{http_code}',
      `${base}/images/imports`,
    ]);
    const status = Number(posted.slice(posted.lastIndexOf('\n') + 1));
    tally.add(status, 'curl -F POST /images/imports');
    assert.equal(status, 202, posted);
    const got = await curl(['-H', 'expect: 100-continue', '-w', '\n%{http_code}', `${base}/counter/expect`]);
    assert.equal(tally.add(Number(got.slice(got.lastIndexOf('\n') + 1)), 'curl GET with Expect'), 200);
    const { id } = JSON.parse(posted.slice(0, posted.lastIndexOf('\n'))) as { id: string };
    let job: { status: string; imported: number } = { status: 'queued', imported: 0 };
    for (let deadline = Date.now() + 60_000; job.status !== 'completed' && Date.now() < deadline; ) {
      await sleep(100);
      const res = await send('198.18.3.1', 'GET', `/images/imports/${id}`);
      tally.add(res.status, 'GET /images/imports/:id');
      job = JSON.parse(res.text);
    }
    assert.equal(job.status, 'completed');
    assert.equal(job.imported, 2000);
    const ended = performance.now();
    await record(
      'curl -F upload of a 1.57 MB IDX pair, and a GET with Expect',
      2,
      tally,
      ended,
      `202 and 2,000 images imported in ${((ended - started) / 1000).toFixed(1)} s; 502 before`,
    );
  });

  test('3: decode bombs are refused at once, and thumbnails of large images are not made while one waits', async () => {
    const tally = new Tally();
    const bomb = await sharp({
      create: { width: 7000, height: 7000, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 1 } },
    })
      .toColourspace('rgb16')
      .png({ compressionLevel: 9 })
      .toBuffer();
    const upload = (body: Buffer, from: string) =>
      send(from, 'POST', '/images?dataset=bombs', { headers: { ...auth, 'content-type': 'image/png' }, body });
    const bombs = await Promise.all(Array.from({ length: 5 }, () => upload(bomb, '198.18.4.1')));
    for (const res of bombs) {
      assert.equal(tally.add(res.status, 'POST /images (16-bit 7000x7000)'), 422, res.text);
      assert.equal(JSON.parse(res.text).code, 'IMAGE_TOO_COSTLY');
    }
    const slowestBomb = Math.max(...bombs.map((b) => b.ms));
    // a large image that is allowed, then 15 thumbnail requests for it without a token
    const large = await sharp({ create: { width: 5000, height: 4000, channels: 3, background: '#336699' } })
      .png()
      .toBuffer();
    const stored = await upload(large, '198.18.4.2');
    assert.equal(tally.add(stored.status, 'POST /images (5000x4000)'), 201, stored.text);
    const { id } = JSON.parse(stored.text) as { id: string };
    const thumbs = await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        send(`198.18.4.${10 + i}`, 'GET', `/images/${id}/thumbnail?size=${[64, 128, 256][i % 3]}`),
      ),
    );
    // 409 while the thumbnails are made in the background (200 once one is there), each at once
    for (const res of thumbs) {
      assert.ok([200, 409].includes(tally.add(res.status, 'GET /images/:id/thumbnail')), res.text);
      assert.ok(res.ms < 1000, `a thumbnail answer took ${Math.round(res.ms)} ms`);
    }
    const metrics = await send('198.18.4.3', 'GET', '/metrics');
    assert.match(metrics.text, /gateway_circuit_state\{[^}]*upstream="images"[^}]*\} 0/, 'the circuit stayed closed');
    const ended = performance.now();
    await record(
      '5 × 16-bit 7000×7000 PNG uploads, 15 thumbnails of a 20 M pixel image',
      3,
      tally,
      ended,
      `422 each within ${Math.round(slowestBomb)} ms; thumbnails 409 at once, made in the background; images circuit closed`,
    );
  });

  test('5: a full volume answers 507, and uploads work again once space is freed', async () => {
    const tally = new Tally([507]);
    const noise = await sharp(bytesFrom(5)(300 * 300 * 3), { raw: { width: 300, height: 300, channels: 3 } })
      .png()
      .toBuffer();
    const { bavail, bsize } = await statfs(volume);
    const filler = join(volume, 'filler');
    await writeFile(filler, Buffer.alloc(Math.max(0, bavail * bsize - 64 * 1024)));
    const upload = () =>
      send('198.18.5.1', 'POST', '/images?dataset=full', {
        headers: { ...auth, 'content-type': 'image/png' },
        body: noise,
      });
    for (let i = 0; i < 20; i++) {
      const res = await upload();
      assert.equal(tally.add(res.status, 'POST /images on a full volume'), 507, res.text);
    }
    const ready = await send('198.18.5.1', 'GET', '/readyz');
    assert.equal(tally.add(ready.status, 'GET /readyz'), 200, 'reads go on: the gateway stays ready');
    await rm(filler);
    const freed = performance.now();
    let status = 0;
    while (status !== 201 && performance.now() - freed < 10_000) status = tally.add((await upload()).status, 'POST');
    assert.equal(status, 201);
    await record(
      '20 uploads on a full images volume (private tmpfs)',
      5,
      tally,
      freed,
      '507 INSUFFICIENT_STORAGE each, /readyz degraded, not 500; 201 once space is freed',
    );
  });

  test('6: nested and huge JSON, odd request targets, /readyz floods and replays are refused cheaply', async () => {
    const tally = new Tally();
    const deep = `{"by":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const huge = JSON.stringify({ by: Array.from({ length: 120_000 }, (_, i) => i) });
    const writes = [
      ['POST', '/counter/hostile/increment'],
      ['POST', '/jokes'],
      ['PATCH', '/images/0190a3c4-1e6b-7c2d-9f00-000000000001'],
    ];
    let longest = 0;
    for (const [method, path] of writes) {
      for (const body of [deep, huge]) {
        const res = await send('198.18.6.1', method as string, path as string, {
          headers: { ...auth, 'content-type': 'application/json' },
          body,
        });
        assert.ok(tally.add(res.status, `${method} ${path}`) < 500, res.text);
        longest = Math.max(longest, res.text.length);
      }
    }
    assert.ok(longest < 1000, `an answer of ${longest} bytes`);
    for (let i = 0; i < 10; i++) {
      assert.equal(tally.add((await rawTarget(base, 'OPTIONS', '*')).status, 'OPTIONS *'), 400);
      assert.equal(tally.add((await rawTarget(base, 'GET', `${base}/counter/x`)).status, 'absolute-form GET'), 400);
    }
    // /readyz from one client: past its rate limit it is refused, and it never shows an address
    let limited = 0;
    for (let i = 0; i < 2100; i++) {
      const res = await send('198.18.6.2', 'GET', '/readyz');
      if (tally.add(res.status, 'GET /readyz') === 429) limited += 1;
      assert.doesNotMatch(res.text, /127\.0\.0\.1:\d+/);
    }
    assert.ok(limited >= 100, `${limited} refused`);
    // a replay of the whole stream is paced
    const nc = await connect({ servers: NATS_URL });
    const js = nc.jetstream();
    const padding = 'x'.repeat(1000);
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) =>
        js.publish(`${stream.subjectPrefix}.created.replay`, JSON.stringify({ id: `r${i}`, padding })),
      ),
    );
    await nc.close();
    const replay = await openStream('198.18.6.3', '/images/events?since=0');
    tally.add(replay.status, 'GET /images/events?since=0');
    await sleep(2000);
    replay.close();
    const perSecond = replay.bytes / 2;
    assert.ok(perSecond < 1.6 * MiB, `${Math.round(perSecond)} bytes/s`);
    const ended = performance.now();
    await record(
      'nested and 1 MB JSON, OPTIONS * and absolute URLs, 2,100 /readyz from one client, a replay from since=0',
      6,
      tally,
      ended,
      `400 in under 1 KB; 400 INVALID_REQUEST_TARGET; ${limited} × 429, no address shown; replay at ${Math.round(perSecond / 1024)} KiB/s`,
    );
  });
});

/** A request whose target is written as given (no URL parsing on the way), for OPTIONS * and absolute-form. */
function rawTarget(base: string, method: string, target: string): Promise<{ status: number }> {
  return new Promise((resolve) => {
    const req = httpRequest(
      `${base}/`,
      { method, path: target, agent: false, headers: { 'x-forwarded-for': '198.18.6.9' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.on('error', () => resolve({ status: 0 }));
    req.end();
  });
}
