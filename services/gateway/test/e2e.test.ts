import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { authorized, closedPort, TEST_TOKEN } from './helpers.ts';

const root = new URL('../../../', import.meta.url).pathname;

interface Proc {
  child: ChildProcess;
  lines: string[];
}

function start(service: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [`services/${service}/src/main.ts`], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let rest = '';
  const collect = (chunk: Buffer) => {
    const parts = (rest + chunk.toString('utf8')).split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return { child, lines };
}

async function waitReady(url: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/readyz`).catch(() => null);
    if (res?.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not become ready within ${timeoutMs} ms`);
}

async function stop(proc: Proc) {
  if (proc.child.exitCode !== null) return proc.child.exitCode;
  proc.child.kill('SIGTERM');
  const [code] = await once(proc.child, 'exit');
  return code;
}

describe('gateway and counter as processes', () => {
  const prefix = `test:${randomUUID()}:`;
  const redis = new Redis('redis://127.0.0.1:6379', { keyPrefix: prefix });
  let counter: Proc;
  let gateway: Proc;
  let base: string;

  before(async () => {
    const [counterPort, gatewayPort] = [await closedPort(), await closedPort()];
    counter = start('counter', { PORT: String(counterPort), REDIS_KEY_PREFIX: prefix });
    gateway = start('gateway', {
      PORT: String(gatewayPort),
      COUNTER_URL: `http://127.0.0.1:${counterPort}`,
      JOKES_URL: '',
      IMAGES_URL: '',
      API_TOKENS: TEST_TOKEN,
      RATE_LIMIT_KEY_PREFIX: `${prefix}ratelimit:`,
    });
    base = `http://127.0.0.1:${gatewayPort}`;
    await waitReady(`http://127.0.0.1:${counterPort}`);
    await waitReady(base);
  });

  after(async () => {
    await Promise.all([stop(gateway), stop(counter)]);
    await redis.del('hits', 'counter:e2e');
    await redis.quit();
    // rate-limit counts the gateway wrote under the same prefix
    const plain = new Redis('redis://127.0.0.1:6379');
    const left = await plain.keys(`${prefix}*`);
    if (left.length > 0) await plain.del(...left);
    await plain.quit();
  });

  test('GET / through the gateway is the Docker sample, counting N then N+1', async () => {
    const first = await fetch(`${base}/`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-type'), 'text/plain; charset=utf-8');
    const text = await first.text();
    const match = /^Hello World! I have been seen (\d+) times\.\n$/.exec(text);
    assert.ok(match, `unexpected body ${JSON.stringify(text)}`);
    const n = Number(match[1]);
    const second = await (await fetch(`${base}/`)).text();
    assert.equal(second, `Hello World! I have been seen ${n + 1} times.\n`);
    assert.equal(await redis.get('hits'), String(n + 1));
  });

  test('named counters work through the gateway', async () => {
    const inc = await fetch(`${base}/counter/e2e/increment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...authorized },
      body: JSON.stringify({ by: 5 }),
    });
    assert.equal(inc.status, 200);
    assert.deepEqual(await inc.json(), { name: 'e2e', value: 5 });
    const bad = await fetch(`${base}/counter/Not%20Valid`);
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /Path parameter "name"/);
  });

  test('one request id shows in the answer and in log lines of both services', async () => {
    const id = `e2e-${randomUUID()}`;
    const res = await fetch(`${base}/counter/e2e`, { headers: { 'x-request-id': id } });
    assert.equal(res.headers.get('x-request-id'), id);
    await res.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const tagged = (lines: string[]) =>
      lines.map((line) => JSON.parse(line) as { reqId?: string; service?: string }).filter((l) => l.reqId === id);
    const inGateway = tagged(gateway.lines);
    const inCounter = tagged(counter.lines);
    assert.ok(inGateway.length > 0, 'gateway logged the request id');
    assert.ok(inCounter.length > 0, 'counter logged the request id');
    assert.ok(inGateway.every((l) => l.service === 'gateway'));
    assert.ok(inCounter.every((l) => l.service === 'counter'));
  });

  test('both processes exit 0 on SIGTERM', async () => {
    assert.equal(await stop(gateway), 0);
    assert.equal(await stop(counter), 0);
  });
});
