// A private nats-server with JetStream for fault tests: they stop and restart this one, never the
// shared instance on 4222 that other test files are using at the same time.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './process.ts';

const BINARY = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';
const READY_TIMEOUT_MS = 10_000;

/** A nats-server of a test's own, on a port and store directory that stay the same across stop() and start(). */
export interface PrivateNats {
  readonly port: number;
  readonly url: string;
  start(): Promise<void>;
  /** Stops the server and waits for the exit; SIGKILL to simulate a crash. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it and removes its store directory. */
  close(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('INFO'));
    });
    socket.once('error', () => done(false));
  });
}

/** Starts a JetStream nats-server on a free port with a temporary store directory. */
export async function startNatsServer(): Promise<PrivateNats> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-nats-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill('SIGKILL');
  process.on('exit', killOnExit);

  const server: PrivateNats = {
    port,
    url: `nats://127.0.0.1:${port}`,
    async start() {
      if (child) return;
      const proc = spawn(BINARY, ['-js', '-sd', dir, '-p', String(port), '-a', '127.0.0.1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      proc.stdout?.on('data', (chunk) => (output = (output + chunk).slice(-4000)));
      proc.stderr?.on('data', (chunk) => (output = (output + chunk).slice(-4000)));
      child = proc;
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while (proc.exitCode === null && Date.now() < deadline) {
        if (await accepts(port)) return;
        await sleep(25);
      }
      proc.kill('SIGKILL');
      child = undefined;
      throw new Error(`nats-server on port ${port} did not start: ${output.trim()}`);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const proc = child;
      if (!proc) return;
      child = undefined;
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    async close() {
      await server.stop('SIGKILL');
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}
