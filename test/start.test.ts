// `npm start` against a Compose file of one counter on a free port: it binds loopback only, and a
// service that dies is started again instead of taking the rest down.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { portAnswers, waitForHealth } from '../scripts/lib/net.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
let dir: string;
let port: number;
let starter: ChildProcess | undefined;
let log = '';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: free } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return free;
}

/** The pid of the process listening on the port, as ss sees it. */
function listener(on: number): number {
  const out = execFileSync('ss', ['-Hltnp', `sport = :${on}`], { encoding: 'utf8' });
  const pid = /pid=(\d+)/.exec(out)?.[1];
  assert.ok(pid, `nothing listens on ${on}: ${out}`);
  return Number(pid);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-start-'));
  port = await freePort();
  const file = join(dir, 'compose.yml');
  await writeFile(
    file,
    `services:
  counter:
    build: { context: ${root}, dockerfile: infra/Dockerfile, args: { SERVICE: counter } }
    restart: unless-stopped
    environment:
      PORT: "${port}"
      LOG_LEVEL: info
      REDIS_URL: redis://127.0.0.1:6379
      REDIS_KEY_PREFIX: "test:start:${randomUUID()}:"
`,
  );
  starter = spawn(process.execPath, ['scripts/start.ts', '--file', file], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [starter.stdout, starter.stderr]) stream?.on('data', (chunk) => (log += chunk));
  await waitForHealth(`http://127.0.0.1:${port}/healthz`, { timeoutMs: 30_000 });
});

after(async () => {
  if (starter && starter.exitCode === null) {
    const gone = new Promise((resolve) => starter?.once('exit', resolve));
    starter.kill('SIGTERM');
    await Promise.race([gone, sleep(15_000)]);
    if (starter.exitCode === null) starter.kill('SIGKILL');
  }
  await rm(dir, { recursive: true, force: true });
});

test('npm start binds the services to loopback only', async () => {
  const outside = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && !a.internal && a.family === 'IPv4')?.address;
  assert.ok(outside, 'this machine has an address other than loopback to try');
  assert.equal(await portAnswers(port, '127.0.0.1'), true);
  assert.equal(await portAnswers(port, outside), false, `the counter answers on ${outside}:${port}`);
});

test('npm start starts a service that died again, and keeps running', async () => {
  const first = listener(port);
  process.kill(first, 'SIGKILL');
  const deadline = Date.now() + 20_000;
  let again: number | undefined;
  while (Date.now() < deadline) {
    await sleep(200);
    if (!(await portAnswers(port))) continue;
    again = listener(port);
    break;
  }
  assert.ok(again && again !== first, `no new counter process; log:\n${log.slice(-2000)}`);
  await waitForHealth(`http://127.0.0.1:${port}/healthz`, { timeoutMs: 10_000 });
  assert.equal(starter?.exitCode, null, 'npm start is still running');
  assert.match(log, /counter exited unexpectedly \(signal SIGKILL\); starting it again in 1 s/);
});
