// main.ts as a process: it validates its environment, serves, and exits 0 on SIGTERM.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitForHealth } from '../../../scripts/lib/net.ts';
import { freePort } from '../../../test/helpers/redis-server.ts';
import { deleteKeys, plainRedis, testPrefix } from './helpers.ts';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const SHUTDOWN_WITHIN_MS = 10_000;

/** The environment main.ts gets: nothing from this process but PATH. */
function envWith(vars: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...vars };
}

interface Running {
  child: ChildProcess;
  base: string;
  output: () => string;
}

async function startCounter(vars: Record<string, string>): Promise<Running> {
  const port = await freePort();
  const child = spawn(process.execPath, [main], {
    env: envWith({ PORT: String(port), HOST: '127.0.0.1', ...vars }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new AbortController();
  child.once('exit', () => exited.abort());
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(`${base}/healthz`, { timeoutMs: 10_000, intervalMs: 50, signal: exited.signal });
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`counter did not come up: ${(err as Error).message}\n${output}`);
  }
  return { child, base, output: () => output };
}

/** Sends SIGTERM and resolves with the exit code and how long the exit took. */
async function terminate(child: ChildProcess): Promise<{ code: number | null; ms: number }> {
  const started = performance.now();
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), SHUTDOWN_WITHIN_MS + 2000);
  const [code] = (await exited) as [number | null];
  clearTimeout(timer);
  return { code, ms: performance.now() - started };
}

describe('node services/counter/src/main.ts', () => {
  const prefix = testPrefix();
  after(async () => {
    const redis = plainRedis();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  test('serves the counter and exits 0 within 10 s of SIGTERM', async () => {
    const { child, base, output } = await startCounter({ REDIS_KEY_PREFIX: prefix });
    await waitForHealth(`${base}/readyz`, { timeoutMs: 5000, intervalMs: 50 });
    const res = await fetch(`${base}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'Hello World! I have been seen 1 times.\n');
    const { code, ms } = await terminate(child);
    assert.equal(code, 0, output());
    assert.ok(ms < SHUTDOWN_WITHIN_MS, `exited after ${Math.round(ms)} ms`);
  });

  test('exits 0 on SIGTERM while Redis is unreachable', async () => {
    // Nothing listens on this port, so the client is stuck reconnecting when the signal comes.
    const redisPort = await freePort();
    const { child, base, output } = await startCounter({ REDIS_URL: `redis://127.0.0.1:${redisPort}` });
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 503);
    await ready.body?.cancel();
    const { code, ms } = await terminate(child);
    assert.equal(code, 0, output());
    assert.ok(ms < SHUTDOWN_WITHIN_MS, `exited after ${Math.round(ms)} ms`);
  });

  test('a bad PORT exits non-zero with a message naming PORT', () => {
    const child = spawnSync(process.execPath, [main], {
      env: envWith({ PORT: 'abc' }),
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(child.status, 78);
    assert.match(child.stderr, /PORT/);
    assert.match(child.stderr, /"abc"/);
  });

  test('a REDIS_URL that is not a redis URL exits non-zero naming it', () => {
    const child = spawnSync(process.execPath, [main], {
      env: envWith({ REDIS_URL: 'http://127.0.0.1:6379' }),
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(child.status, 78);
    assert.match(child.stderr, /REDIS_URL .*"http:\/\/127\.0\.0\.1:6379"/);
  });
});
