import { Agent, get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadResult } from './load.ts';
import { Samples } from './stats.ts';

/** Options for a fixed-rate run. */
export interface FixedRateOptions {
  url: string;
  /** Requests per second. */
  rate: number;
  seconds: number;
  /** The most keep-alive connections open at once. */
  connections: number;
  /** A request unanswered after this long counts as an error. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Sends requests at a steady rate whatever the answers do (an open loop), spreading them evenly over
 * each second, over at most `connections` keep-alive connections. autocannon's overallRate sends each
 * second's whole quota at once and then waits, which measures a burst at full concurrency instead of a
 * steady rate. A request's latency runs from the moment it is issued, so waiting for a free connection
 * counts against the server while the generator's own timer lag does not.
 */
export async function fixedRate(options: FixedRateOptions): Promise<LoadResult> {
  options.signal?.throwIfAborted();
  const target = new URL(options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections, scheduling: 'lifo' });
  const request = { host: target.hostname, port: target.port, path: target.pathname + target.search, agent };
  const timeoutMs = options.timeoutMs ?? 10_000;
  const total = Math.round(options.rate * options.seconds);
  const samples = new Samples();
  let sent = 0;
  let settled = 0;
  let non2xx = 0;
  let errors = 0;
  let lastAnswer = 0;

  const fire = () => {
    const start = performance.now();
    let done = false;
    const finish = (status: number) => {
      if (done) return;
      done = true;
      settled++;
      lastAnswer = performance.now();
      if (status >= 200 && status < 300) samples.push(lastAnswer - start);
      else if (status > 0) non2xx++;
      else errors++;
    };
    const req = get(request, (res) => {
      res.on('end', () => finish(res.statusCode ?? 0));
      res.on('error', () => finish(0));
      res.resume();
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`No answer within ${timeoutMs} ms`)));
    req.on('error', () => finish(0));
  };

  const t0 = performance.now();
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * options.rate) / 1000));
    while (sent < due) {
      sent++;
      fire();
    }
    if (sent >= total) clearInterval(timer);
  }, 1);

  try {
    const deadline = t0 + options.seconds * 1000 + timeoutMs + 1000;
    while (settled < total && performance.now() < deadline) {
      options.signal?.throwIfAborted();
      await sleep(20);
    }
    options.signal?.throwIfAborted();
    errors += total - settled;
    const seconds = ((lastAnswer || performance.now()) - t0) / 1000;
    return {
      url: options.url,
      mode: 'fixed',
      connections: options.connections,
      targetRate: options.rate,
      seconds,
      rps: samples.length / seconds,
      ok: samples.length,
      non2xx,
      errors,
      latency: samples.summarize(),
    };
  } finally {
    clearInterval(timer);
    agent.destroy();
  }
}
