// The events targets (issue 5), measured on the images stack of the images scenario:
//   during the 60,000-image import the outbox backlog stays bounded (the relay keeps up): events/s;
//   upload -> images-worker effect done at 100 uploads/s through the gateway: p50 and p99, p99 <= 1 s.
import { setTimeout as sleep } from 'node:timers/promises';
import { withClient } from '@berth/service-kit';
import { Pool } from 'undici';
import { freePort } from '../lib/ports.ts';
import { ROOT } from '../lib/services.ts';
import type { Running, Stack } from '../lib/stack.ts';
import { Samples } from '../lib/stats.ts';

/** What the outbox did while an import ran. */
export interface OutboxFigures {
  /** Events the relay marked sent from the import's start until the backlog drained. */
  events: number;
  /** Those events over the seconds from the import's start until the backlog was empty again. */
  eventsPerSecond: number;
  /** The largest number of unsent events seen (sampled every 200 ms). */
  peakBacklog: number;
  /** Seconds the backlog took to drain after the import's job ended. */
  drainSeconds: number;
}

/**
 * Samples the outbox of the images database while `work` runs, then waits for the backlog to
 * drain. The backlog staying small while thousands of images a second go in is what shows the
 * relay keeping up; its sent count over the whole time is the events rate.
 */
export async function watchOutbox<T>(
  databaseUrl: string,
  work: () => Promise<T>,
  signal?: AbortSignal,
): Promise<{ result: T; outbox: OutboxFigures }> {
  return withClient(databaseUrl, async (client) => {
    const counts = async () => {
      const { rows } = await client.query<{ unsent: number; sent: number }>(
        'SELECT count(*) FILTER (WHERE sent_at IS NULL)::int AS unsent, count(*) FILTER (WHERE sent_at IS NOT NULL)::int AS sent FROM outbox',
      );
      return rows[0] as { unsent: number; sent: number };
    };
    const before = await counts();
    const started = performance.now();
    let peakBacklog = before.unsent;
    let running = true;
    const sampler = (async () => {
      while (running) {
        peakBacklog = Math.max(peakBacklog, (await counts()).unsent);
        await sleep(200);
      }
    })();
    let result: T;
    try {
      result = await work();
    } finally {
      running = false;
      await sampler;
    }
    const workEnded = performance.now();
    let now = await counts();
    for (let waited = 0; now.unsent > 0 && waited < 120_000; waited += 100) {
      signal?.throwIfAborted();
      await sleep(100);
      now = await counts();
    }
    if (now.unsent > 0)
      throw new Error(`The outbox still held ${now.unsent} unsent events two minutes after the import`);
    const ended = performance.now();
    const events = now.sent - before.sent;
    return {
      result,
      outbox: {
        events,
        eventsPerSecond: events / ((ended - started) / 1000),
        peakBacklog,
        drainSeconds: (ended - workEnded) / 1000,
      },
    };
  });
}

/** Starts the images-worker on the images service's database, volume and stream; resolves once it is ready. */
export async function startWorker(stack: Stack, imagesEnv: Record<string, string>): Promise<Running> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  return stack.start({
    name: 'images-worker',
    command: process.execPath,
    args: ['services/images/src/worker.ts'],
    cwd: ROOT,
    env: { ...imagesEnv, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    readyUrl: `${url}/readyz`,
    readyTimeoutMs: 30_000,
  });
}

/** Waits until no image of the data sets is still waiting for the worker; returns the seconds it took. */
export async function waitForAnalysis(
  databaseUrl: string,
  datasets: string[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<number> {
  const started = performance.now();
  return withClient(databaseUrl, async (client) => {
    for (;;) {
      signal?.throwIfAborted();
      const { rows } = await client.query<{ waiting: number }>(
        'SELECT count(*)::int AS waiting FROM images WHERE dataset = ANY($1) AND analysis_status IS NULL',
        [datasets],
      );
      if (rows[0]?.waiting === 0) return (performance.now() - started) / 1000;
      if (performance.now() - started > timeoutMs) {
        throw new Error(`${rows[0]?.waiting} images were still waiting for the worker after ${timeoutMs / 1000} s`);
      }
      await sleep(200);
    }
  });
}

/** Upload to worker-effect latency at a fixed rate. */
export interface EffectFigures {
  rate: number;
  uploads: number;
  failed: number;
  /** Why uploads failed: status code or error, with counts. */
  failures: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Sends `rate` uploads a second (an open loop: each on time whatever the earlier ones do) through
 * the gateway, then reads when the worker finished each one (analysed_at, set in the transaction
 * that records its effect). Latency runs from the moment the upload was sent to that commit.
 */
export async function measureEffectLatency(options: {
  gatewayUrl: string;
  databaseUrl: string;
  bodies: Buffer[];
  rate: number;
  seconds: number;
  dataset: string;
  token: string;
  signal?: AbortSignal;
}): Promise<EffectFigures> {
  const total = Math.min(options.bodies.length, Math.round(options.rate * options.seconds));
  const sentAt = new Map<string, number>();
  let failed = 0;
  const failures: Record<string, number> = {};
  const fail = (why: string) => {
    failed++;
    failures[why] = (failures[why] ?? 0) + 1;
  };
  const inFlight: Promise<void>[] = [];
  // undici's request on a pool of its own: fetch's per-request cost (WHATWG streams, a Request
  // and Response each) on the load generator would take CPU from the services being measured
  const gateway = new Pool(options.gatewayUrl, { connections: 256 });
  const upload = async (body: Buffer) => {
    const at = Date.now();
    try {
      const res = await gateway.request({
        method: 'POST',
        path: `/images?dataset=${options.dataset}`,
        headers: { 'content-type': 'image/png', authorization: `Bearer ${options.token}` },
        body,
        signal: options.signal,
      });
      const image = (await res.body.json()) as { id?: string };
      if (res.statusCode === 201 && image.id) sentAt.set(image.id, at);
      else fail(String(res.statusCode));
    } catch (err) {
      fail((err as Error).message);
    }
  };
  try {
    const t0 = performance.now();
    for (let n = 0; n < total; n++) {
      options.signal?.throwIfAborted();
      const due = t0 + (n * 1000) / options.rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      inFlight.push(upload(options.bodies[n] as Buffer));
    }
    await Promise.all(inFlight);
  } finally {
    await gateway.close();
  }
  await waitForAnalysis(options.databaseUrl, [options.dataset], 60_000, options.signal);
  return withClient(options.databaseUrl, async (client) => {
    const { rows } = await client.query<{ id: string; done: string }>(
      `SELECT id, (extract(epoch FROM analysed_at) * 1000)::float8 AS done FROM images WHERE id = ANY($1::uuid[])`,
      [[...sentAt.keys()]],
    );
    const samples = new Samples();
    for (const row of rows) samples.push(Number(row.done) - (sentAt.get(row.id) as number));
    const summary = samples.summarize();
    return {
      rate: options.rate,
      uploads: sentAt.size,
      failed,
      failures,
      p50: summary.p50,
      p99: summary.p99,
      max: summary.max,
    };
  });
}
