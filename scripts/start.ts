// `npm start`: runs berth's Node services as local processes, wired exactly as docker-compose.yml wires
// them, with one log stream. Infrastructure (Redis, PostgreSQL, NATS) is expected at the local defaults.
import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  infraEndpoints,
  loadCompose,
  type NativeService,
  nativeServices,
  nativeVariables,
  startOrder,
} from './lib/compose.ts';
import { prefixedLog } from './lib/log.ts';
import { portAnswers, waitForHealth } from './lib/net.ts';

const STOP_GRACE_MS = 10_000;
/** First wait before a service that died is started again; doubles up to RESTART_MAX_MS. */
const RESTART_FIRST_MS = 1000;
const RESTART_MAX_MS = 30_000;
/** A service that ran this long before it died starts again after the first wait. */
const RESTART_RESET_MS = 60_000;
const HEALTH_TIMEOUT_MS = 30_000;
const SELF = 'berth';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    file: { type: 'string', short: 'f', default: 'docker-compose.yml' },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write(`Usage: npm start [-- --only gateway,counter] [--file docker-compose.yml]

Runs every Node service of the Compose file as a local process, in depends_on order, with the
Compose environment (service host names pointed at 127.0.0.1). Ctrl-C stops them all.
`);
  process.exit(0);
}

const compose = loadCompose(resolve(root, values.file), { env: nativeVariables(root) });
const all = startOrder(nativeServices(compose));
const only = values.only
  ?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const unknown = only?.filter((name) => !all.some((s) => s.name === name)) ?? [];
if (unknown.length > 0) {
  process.stderr.write(`Unknown service "${unknown.join('", "')}"; known: ${all.map((s) => s.name).join(', ')}\n`);
  process.exit(2);
}
const selected = only ? all.filter((s) => only.includes(s.name)) : all;
const write = prefixedLog([SELF, ...selected.map((s) => s.name)]);
const say = (line: string) => write(SELF, line);

const children = new Map<string, ChildProcess>();
const startup = new AbortController();
let stopping: Promise<void> | undefined;

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function exited(child: ChildProcess): Promise<void> {
  return alive(child) ? new Promise((done) => child.once('exit', () => done())) : Promise.resolve();
}

// SIGTERM to every child, SIGKILL to whatever is still running after the grace period.
function stopAll(exitCode: number): Promise<void> {
  stopping ??= (async () => {
    startup.abort();
    const names = [...children].filter(([, child]) => alive(child)).map(([name]) => name);
    const running = [...children.values()].filter(alive);
    if (running.length > 0) say(`stopping ${names.join(', ')}`);
    for (const child of running) child.kill('SIGTERM');
    const grace = new Promise<'timeout'>((done) => setTimeout(done, STOP_GRACE_MS, 'timeout').unref());
    if ((await Promise.race([Promise.all(running.map(exited)), grace])) === 'timeout') {
      for (const [name, child] of children) {
        if (!alive(child)) continue;
        say(`${name} did not stop within ${STOP_GRACE_MS / 1000} s; killing it`);
        child.kill('SIGKILL');
      }
      await Promise.all(running.map(exited));
    }
    process.exit(exitCode);
  })();
  return stopping;
}

/** How long to wait before each service's next start, as Compose's restart policy backs off. */
const restartDelays = new Map<string, number>();

function run(svc: NativeService): ChildProcess {
  const startedAt = Date.now();
  // Its own process group: a terminal Ctrl-C reaches only this script, which then stops each child
  // once (the services treat a second signal as "exit now"). It runs where the image's WORKDIR is.
  const child = spawn(process.execPath, svc.args, {
    cwd: join(root, svc.cwd),
    // Node's compile cache keeps the compiled code of the services' modules between starts; module
    // loading is most of a service's start-up time. Services listen on loopback only, unless the
    // Compose file says otherwise: a native run is for this machine.
    env: {
      NODE_COMPILE_CACHE: join(root, '.data', 'node-compile-cache'),
      ...process.env,
      HOST: '127.0.0.1',
      ...svc.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => write(svc.name, line));
  }
  child.on('error', (err) => say(`${svc.name} could not start: ${err.message}`));
  child.on('exit', (code, signal) => {
    if (stopping) return;
    if (svc.oneShot && code === 0) {
      say(`${svc.name} completed`);
      return;
    }
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (svc.oneShot) {
      say(`${svc.name} exited unexpectedly (${how}); stopping the rest`);
      void stopAll(1);
      return;
    }
    // a server that dies is started again, as Compose's restart policy does; the rest keep running
    const previous = restartDelays.get(svc.name);
    const delay =
      previous === undefined || Date.now() - startedAt >= RESTART_RESET_MS
        ? RESTART_FIRST_MS
        : Math.min(previous * 2, RESTART_MAX_MS);
    restartDelays.set(svc.name, delay);
    say(`${svc.name} exited unexpectedly (${how}); starting it again in ${delay / 1000} s`);
    setTimeout(() => {
      if (!stopping) run(svc);
    }, delay);
  });
  children.set(svc.name, child);
  return child;
}

function healthUrl(svc: NativeService): string {
  return `http://127.0.0.1:${svc.port}/healthz`;
}

process.on('SIGINT', () => {
  if (stopping) {
    for (const child of children.values()) if (alive(child)) child.kill('SIGKILL');
    process.exit(130);
  }
  void stopAll(0);
});
process.on('SIGTERM', () => void stopAll(0));
// Never leave a service behind, whatever way this script ends.
process.on('exit', () => {
  for (const child of children.values()) if (alive(child)) child.kill('SIGKILL');
});

for (const infra of infraEndpoints(compose)) {
  const users = infra.usedBy.filter((name) => selected.some((s) => s.name === name));
  if (users.length === 0) continue;
  if (!(await portAnswers(infra.port))) {
    say(
      `warning: ${infra.name} is not answering on 127.0.0.1:${infra.port} (needed by ${users.join(', ')}); ` +
        `start it, e.g. docker compose -f docker-compose.yml -f docker-compose.test.yml up -d ${infra.name}`,
    );
  }
}

// Each service starts as soon as its own dependencies are there, not after every service listed
// before it: the steps and services that do not wait on each other start side by side.
const launched = new Map<string, Promise<void>>();
function launch(svc: NativeService): Promise<void> {
  let started = launched.get(svc.name);
  if (!started) {
    started = (async () => {
      await Promise.all(svc.dependsOn.map((depName) => awaitDependency(svc, depName)));
      const where = svc.oneShot ? 'runs once' : `port ${svc.port ?? 'unknown'}`;
      const dir = svc.cwd === '.' ? 'the repository root' : svc.cwd;
      say(`starting ${svc.name} (node ${svc.args.join(' ')} in ${dir}, ${where})`);
      run(svc);
    })();
    launched.set(svc.name, started);
  }
  return started;
}

/** Resolves once `svc` may start as far as `depName` goes: a step completed, a server healthy. */
async function awaitDependency(svc: NativeService, depName: string): Promise<void> {
  const dep = selected.find((s) => s.name === depName);
  if (dep) await launch(dep);
  const step = children.get(depName);
  if (dep?.oneShot && step) {
    say(`${svc.name} waits for ${dep.name} to complete`);
    await exited(step);
    if (step.exitCode !== 0) throw new Error(`${dep.name} failed, so ${svc.name} cannot start`);
    return;
  }
  const known = dep ?? all.find((s) => s.name === depName);
  if (!known || known.port === undefined) return;
  if (children.has(known.name)) {
    say(`${svc.name} waits for ${known.name}`);
    await waitForHealth(healthUrl(known), { timeoutMs: HEALTH_TIMEOUT_MS, signal: startup.signal });
  } else if (!(await portAnswers(known.port))) {
    say(`warning: ${known.name} is not running here or on 127.0.0.1:${known.port}; ${svc.name} starts without it`);
  }
}

try {
  await Promise.all(selected.map(launch));
  const last = selected.filter((s) => s.port !== undefined);
  await Promise.all(
    last.map((s) => waitForHealth(healthUrl(s), { timeoutMs: HEALTH_TIMEOUT_MS, signal: startup.signal })),
  );
  const published = selected.filter((s) => compose.services[s.name]?.ports?.length);
  const urls = published.map((s) => `${s.name} http://localhost:${s.port}`).join(', ');
  say(`all up${urls ? `: ${urls}` : ''}; Ctrl-C stops everything`);
} catch (err) {
  if (!stopping) {
    say(`start-up failed: ${(err as Error).message}`);
    await stopAll(1);
  }
}
