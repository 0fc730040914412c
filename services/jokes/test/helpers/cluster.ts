import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

// The postmaster's pid is the first line of postmaster.pid; its children are the backends and workers
async function signalAll(data: string, signal: NodeJS.Signals): Promise<void> {
  const postmaster = Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(postmaster)]);
  const pids = [postmaster, ...stdout.split('\n').filter(Boolean).map(Number)];
  // children first on the way down, the postmaster first on the way back up
  for (const pid of signal === 'SIGSTOP' ? pids.reverse() : pids) process.kill(pid, signal);
}

/** A private PostgreSQL server that a fault test may stop and start without touching the shared one. */
export interface PrivateCluster {
  port: number;
  /** A URL for the given database on this server (trust auth, user postgres). */
  url(database: string): string;
  start(): Promise<void>;
  /** Freezes every server process (SIGSTOP): connections stay open and nothing answers, as in a hung host. */
  freeze(): Promise<void>;
  /** Lets a frozen server run on (SIGCONT). */
  thaw(): Promise<void>;
  /** Fast shutdown: open connections are terminated, as in a crash or a restart. */
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * initdb + pg_ctl on a free port in a temporary folder. PostgreSQL refuses to run as root, so as
 * root the commands run as the postgres user.
 */
export async function createCluster(): Promise<PrivateCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const exec = (command: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(BIN, command), ...args]) : run(join(BIN, command), args);
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await chmod(dir, 0o700);
  await exec('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB`;
  const cluster: PrivateCluster = {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    start: async () => {
      await exec('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
    },
    freeze: () => signalAll(data, 'SIGSTOP'),
    thaw: () => signalAll(data, 'SIGCONT'),
    stop: async () => {
      await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
    },
    destroy: async () => {
      await signalAll(data, 'SIGCONT').catch(() => {});
      await exec('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
