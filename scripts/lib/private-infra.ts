// Redis, NATS and PostgreSQL servers of one run's own, on free ports in a temp folder, which the run
// may stop and start at will: the shared servers on 6379, 4222 and 5432 are never touched.
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort } from '../../bench/lib/ports.ts';
import { portAnswers } from './net.ts';

export { freePort };

const run = promisify(execFile);
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

/** A server the run owns: it keeps its port and data across stop() and start(). */
export interface PrivateServer {
  readonly name: string;
  readonly port: number;
  /** Starts it (again) and resolves once it accepts connections. */
  start(): Promise<void>;
  /** A clean stop (SIGTERM, or PostgreSQL's fast shutdown), as a restart by an operator does. */
  stop(): Promise<void>;
  /** Stops it for good and removes its folder. */
  destroy(): Promise<void>;
}

async function waitForPort(name: string, port: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited()) throw new Error(`${name} exited before it accepted connections on ${port}`);
    if (await portAnswers(port, '127.0.0.1', 200)) return;
    await sleep(25);
  }
  throw new Error(`${name} did not accept connections on ${port} within ${READY_TIMEOUT_MS / 1000} s`);
}

/** A server that is one foreground process (redis-server, nats-server). */
async function processServer(
  name: string,
  command: string,
  args: (port: number, dir: string) => string[],
): Promise<PrivateServer> {
  const dir = await mkdtemp(join(tmpdir(), `berth-${name}-`));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const kill = () => child?.kill('SIGKILL');
  process.on('exit', kill);
  const server: PrivateServer = {
    name,
    port,
    async start() {
      if (child) return;
      const proc = spawn(command, args(port, dir), { stdio: 'ignore' });
      let exited = false;
      proc.once('exit', () => {
        exited = true;
      });
      child = proc;
      await waitForPort(name, port, () => exited);
    },
    async stop() {
      const proc = child;
      if (!proc) return;
      const gone = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : once(proc, 'exit');
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await gone;
      clearTimeout(timer);
      child = undefined;
    },
    async destroy() {
      kill();
      if (child) await once(child, 'exit').catch(() => {});
      child = undefined;
      process.off('exit', kill);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** redis-server persisting as docker-compose.yml's does: append-only, fsync every second. */
export function privateRedis(): Promise<PrivateServer> {
  return processServer('redis', 'redis-server', (port, dir) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--loglevel',
    'warning',
  ]);
}

/** nats-server with JetStream on a file store of its own; `monitorPort` serves /healthz and /jsz. */
export async function privateNats(): Promise<PrivateServer & { monitorPort: number }> {
  const monitorPort = await freePort();
  const server = await processServer('nats', 'nats-server', (port, dir) => [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-js',
    '-sd',
    join(dir, 'jetstream'),
    '-m',
    String(monitorPort),
  ]);
  return Object.assign(server, { monitorPort });
}

/** initdb and pg_ctl in a temp folder (as the postgres user when run as root), trust on loopback. */
export async function privatePostgres(
  bin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin',
): Promise<PrivateServer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-postgres-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const exec = (command: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, command), ...args]) : run(join(bin, command), args);
  if (asRoot) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    await chown(dir, uid, gid);
  }
  await chmod(dir, 0o700);
  await exec('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c shared_buffers=32MB -c max_connections=200`;
  let running = false;
  // a run that dies must not leave its cluster behind
  const kill = () => {
    if (!running) return;
    const args = ['-D', data, '-m', 'immediate', '-w', 'stop'];
    const ctl = join(bin, 'pg_ctl');
    spawnSync(asRoot ? 'runuser' : ctl, asRoot ? ['-u', 'postgres', '--', ctl, ...args] : args, { stdio: 'ignore' });
  };
  process.on('exit', kill);
  const server: PrivateServer = {
    name: 'postgres',
    port,
    async start() {
      await exec('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
      running = true;
    },
    async stop() {
      await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
      running = false;
    },
    async destroy() {
      if (running) await exec('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      running = false;
      process.off('exit', kill);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}
