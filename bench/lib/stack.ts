import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/** How to start one process of the stack. */
export interface ProcessSpec {
  /** Short name used in messages. */
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** A URL that answers 2xx once the process can take load. */
  readyUrl: string;
  readyTimeoutMs?: number;
}

/** A started process and the tail of what it wrote. */
export interface Running {
  spec: ProcessSpec;
  child: ChildProcess;
  /** The last lines of its stdout and stderr, for messages when it fails. */
  tail: string[];
  /** Every line it wrote; services run at LOG_LEVEL=warn, so each one is worth a look. */
  lines: number;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
}

const TAIL_LINES = 15;
const STOP_GRACE_MS = 10_000;

/**
 * The processes one benchmark run started. Everything started here is stopped by stop(), and killed
 * outright if the benchmark itself exits first, so no run leaves servers behind.
 */
export class Stack {
  #running: Running[] = [];
  #stopping = false;

  constructor() {
    process.once('exit', () => {
      for (const proc of this.#running) if (!proc.exited) proc.child.kill('SIGKILL');
    });
  }

  /** Starts a process and waits until its readyUrl answers 2xx; fails with its output if it exits or times out. */
  async start(spec: ProcessSpec): Promise<Running> {
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc: Running = { spec, child, tail: [], lines: 0, exited: null };
    this.#running.push(proc);
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        proc.lines++;
        proc.tail.push(line);
        if (proc.tail.length > TAIL_LINES) proc.tail.shift();
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('exit', (code, signal) => {
      proc.exited = { code, signal };
    });
    const spawned = await Promise.race([
      once(child, 'spawn').then(() => null),
      once(child, 'error').then(([err]) => err as Error),
    ]);
    if (spawned) throw new Error(`Could not start ${spec.name} ("${spec.command}"): ${spawned.message}`);
    await waitReady(proc);
    return proc;
  }

  /** Stops one process the way stop() does and forgets it, so it does not count as crashed. */
  async stopOne(proc: Running): Promise<void> {
    this.#running = this.#running.filter((other) => other !== proc);
    await terminate(proc);
  }

  /** Processes that exited while they should have been serving. */
  crashed(): Running[] {
    return this.#running.filter((proc) => proc.exited !== null);
  }

  /** All started processes, in start order. */
  get running(): readonly Running[] {
    return this.#running;
  }

  /** SIGTERM to every process, last started first; SIGKILL to any still there after 10 s. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const proc of [...this.#running].reverse()) await terminate(proc);
  }
}

/** SIGTERM, then SIGKILL if the process is still there after the grace period. */
async function terminate(proc: Running): Promise<void> {
  if (proc.exited) return;
  const exited = once(proc.child, 'exit');
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** Polls readyUrl until it answers 2xx, the process exits, or the time is up. */
async function waitReady(proc: Running): Promise<void> {
  const { name, readyUrl, readyTimeoutMs = 20_000 } = proc.spec;
  const deadline = Date.now() + readyTimeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (proc.exited) {
      throw new Error(`${name} exited with code ${proc.exited.code} before it was ready\n${describeTail(proc)}`);
    }
    try {
      const res = await fetch(readyUrl, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(
    `${name} was not ready at "${readyUrl}" within ${readyTimeoutMs} ms (${last})\n${describeTail(proc)}`,
  );
}

/** The last lines a process wrote, indented, for error messages. */
export function describeTail(proc: Running): string {
  if (proc.tail.length === 0) return `  (${proc.spec.name} wrote nothing)`;
  return proc.tail.map((line) => `  ${proc.spec.name}| ${line}`).join('\n');
}
