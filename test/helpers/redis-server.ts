// A private redis-server for fault tests: they stop, freeze and restart this one, never the shared
// instance on 6379 that other test files are using at the same time.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const READY_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 5000;

/** Why fault tests cannot run here, or undefined when redis-server is installed. */
export const redisServerMissing: string | undefined =
  spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
    ? undefined
    : 'redis-server is not installed (apt-get install redis-server)';

/** A TCP port nothing listens on right now, picked by the kernel. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('Could not find a free port');
  return address.port;
}

/** True when a Redis server on the port answers PING with PONG. */
export function pingRedis(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.once('error', () => done(false));
  });
}

/** A redis-server of a test's own, on a port that stays the same across stop() and start(). */
export interface PrivateRedis {
  /** The port, fixed once the first start() succeeds. */
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** True while the process runs (paused or not). */
  readonly running: boolean;
  /** Starts the server (again, on the same port) and resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops the server and waits for the process to exit; SIGKILL to simulate a crash. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Freezes the process: connections are accepted by the kernel but nothing ever answers. */
  pause(): void;
  /** Lets a paused server run again. */
  resume(): void;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/**
 * Reserves a port and a temporary directory for a redis-server without starting it, so a test can
 * start its service first and the dependency later. Persistence is off: nothing is written to disk.
 */
export async function createRedisServer(): Promise<PrivateRedis> {
  if (redisServerMissing) throw new Error(redisServerMissing);
  const dir = await mkdtemp(join(tmpdir(), 'berth-redis-'));
  let port = await freePort();
  let started = false;
  let child: ChildProcess | undefined;
  let paused = false;
  // A test process that dies mid-test must not leave its redis-server behind.
  const killOnExit = () => child?.kill('SIGKILL');
  process.on('exit', killOnExit);

  async function launch(): Promise<void> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir];
    args.push('--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning');
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    child = proc;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!exited && Date.now() < deadline) {
      if (await pingRedis(port)) return;
      await sleep(20);
    }
    if (!exited) {
      proc.kill('SIGKILL');
      await once(proc, 'exit');
    }
    child = undefined;
    throw new Error(`redis-server on port ${port} did not answer within ${READY_TIMEOUT_MS} ms: ${output.trim()}`);
  }

  const server: PrivateRedis = {
    get port() {
      return port;
    },
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get running() {
      return child !== undefined;
    },
    async start() {
      if (child) return;
      if (started) return launch();
      // Another process may take the free port before redis-server binds it; then pick another.
      for (let attempt = 1; ; attempt++) {
        try {
          await launch();
          started = true;
          return;
        } catch (err) {
          if (attempt === 3) throw err;
          port = await freePort();
        }
      }
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const proc = child;
      if (!proc) return;
      const exited = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : once(proc, 'exit');
      proc.kill(signal);
      // A stopped process only acts on SIGTERM once it runs again.
      if (paused) proc.kill('SIGCONT');
      paused = false;
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      child = undefined;
    },
    pause() {
      if (!child) throw new Error('redis-server is not running');
      child.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      if (!child || !paused) return;
      child.kill('SIGCONT');
      paused = false;
    },
    async close() {
      await server.stop('SIGKILL');
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** createRedisServer, started. */
export async function startRedisServer(): Promise<PrivateRedis> {
  const server = await createRedisServer();
  try {
    await server.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}
