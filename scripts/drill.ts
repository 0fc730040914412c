// `npm run drill`: the fault drill. Runs the stack natively with docker-compose.yml's wiring on Redis,
// NATS and PostgreSQL servers of its own (never the shared ones), drives a bounded mixed load through
// the gateway, and meanwhile restarts each dependency and SIGKILLs each service once, restarting it as
// Compose's restart policy would. Prints per fault the failed requests and the seconds until every
// service is ready again, then checks that no acknowledged write was lost. Exit 1 when a target is missed.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { describeTail, type ProcessSpec, type Running, Stack } from '../bench/lib/stack.ts';
import { loadCompose, type NativeService, nativeServices, nativeVariables, startOrder } from './lib/compose.ts';
import { drillPng } from './lib/png.ts';
import { freePort, type PrivateServer, privateNats, privatePostgres, privateRedis } from './lib/private-infra.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '4' },
    hold: { type: 'string', default: '2' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(`Usage: npm run drill [-- --concurrency 4 --hold 2]

Starts private Redis, NATS and PostgreSQL servers and the whole stack natively, drives a mixed load
(counter hits, jokes reads and writes, image uploads) with --concurrency clients, and restarts each
dependency (down for --hold seconds) and SIGKILLs each service once while it runs. Takes about two minutes.
`);
  process.exit(0);
}

/** A request slower than this counts as hung: every service bounds its own work well below it. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Target: every service ready again within this long after the fault is over. */
const RECOVERY_TARGET_S = 5;
const RECOVERY_LIMIT_MS = 30_000;
const WARM_UP_MS = 5_000;
const SETTLE_MS = 3_000;
const FAILURE_PAUSE_MS = 50;
const CONCURRENCY = Number(values.concurrency);
const HOLD_MS = Number(values.hold) * 1000;
const TOKEN = randomBytes(32).toString('hex');

const say = (line: string) => process.stdout.write(`drill: ${line}\n`);
const stack = new Stack();
const scratch = await mkdtemp(join(tmpdir(), 'berth-drill-'));
const infra: PrivateServer[] = [];

// --- the stack on private infrastructure ------------------------------------------------------------

say('starting private Redis, NATS and PostgreSQL');
const redis = await privateRedis();
const nats = await privateNats();
const postgres = await privatePostgres();
infra.push(redis, nats, postgres);
await Promise.all(infra.map((s) => s.start()));

const compose = loadCompose(join(root, 'docker-compose.yml'), { env: nativeVariables(root, { LOG_LEVEL: 'warn' }) });
const ports: Record<string, number> = { redis: redis.port, nats: nats.port, db: postgres.port };
for (const name of Object.keys(compose.services)) ports[name] ??= await freePort();
const natives = startOrder(nativeServices(compose, { ports, volumesDir: join(scratch, 'volumes') }));
const servers = natives.filter((s) => !s.oneShot);
const url = (name: string) => `http://127.0.0.1:${ports[name]}`;
const gateway = url('gateway');

/** What the drill adds to Compose's environment: its own token, and a rate limit its load never reaches. */
const EXTRA: Record<string, Record<string, string>> = {
  gateway: { API_TOKENS: TOKEN, RATE_LIMIT_MAX: '1000000000', HOST: '127.0.0.1' },
};

function specOf(svc: NativeService): ProcessSpec {
  return {
    name: svc.name,
    command: process.execPath,
    args: svc.args,
    cwd: join(root, svc.cwd),
    env: { HOST: '127.0.0.1', ...svc.env, ...EXTRA[svc.name] },
    readyUrl: `${url(svc.name)}/readyz`,
    readyTimeoutMs: 30_000,
  };
}

const processes = new Map<string, Running>();
try {
  for (const step of natives.filter((s) => s.oneShot)) {
    say(`running ${step.name}`);
    const child = spawn(process.execPath, step.args, {
      cwd: join(root, step.cwd),
      env: { ...process.env, ...step.env },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`${step.name} exited with code ${code}`);
  }
  for (const svc of servers) {
    say(`starting ${svc.name} on ${ports[svc.name]}`);
    processes.set(svc.name, await stack.start(specOf(svc)));
  }
} catch (err) {
  say(`start-up failed: ${(err as Error).message}`);
  await shutdown();
  process.exit(1);
}

// Compose's restart policy (unless-stopped): a service that exits by itself is started again. The
// drill reports each such exit, since a dependency outage should never end a service.
const crashes: string[] = [];
const killing = new Set<string>();
let supervising = true;
async function supervise(): Promise<void> {
  while (supervising) {
    for (const svc of servers) {
      const proc = processes.get(svc.name);
      if (!proc?.exited || killing.has(svc.name)) continue;
      crashes.push(
        `${svc.name} exited by itself (${proc.exited.signal ?? `code ${proc.exited.code}`}):\n${describeTail(proc)}`,
      );
      say(`${svc.name} exited by itself; restarting it as Compose would`);
      killing.add(svc.name);
      await sleep(100);
      try {
        processes.set(svc.name, await stack.start(specOf(svc)));
      } catch (err) {
        say(`${svc.name} did not come back: ${(err as Error).message}`);
      }
      killing.delete(svc.name);
    }
    await sleep(100);
  }
}
const supervisor = supervise();

// --- load -------------------------------------------------------------------------------------------

type Op = 'hit' | 'joke-read' | 'joke-write' | 'image-upload';
interface Outcome {
  op: Op;
  at: number;
  ms: number;
  ok: boolean;
  status: number;
  hung: boolean;
}
const outcomes: Outcome[] = [];
const jokeIds: number[] = [];
const imageIds: string[] = [];
const hitCounts: Array<{ at: number; n: number }> = [];
let loadRunning = true;
let sequence = 0;

const WEIGHTS: Array<[Op, number]> = [
  ['hit', 35],
  ['joke-read', 30],
  ['joke-write', 15],
  ['image-upload', 20],
];

function pick(): Op {
  let roll = Math.random() * 100;
  for (const [op, weight] of WEIGHTS) {
    roll -= weight;
    if (roll < 0) return op;
  }
  return 'hit';
}

/** Sends one request of the kind and records how it went; true when it succeeded. */
async function request(op: Op): Promise<boolean> {
  const at = Date.now();
  const auth = { authorization: `Bearer ${TOKEN}` };
  const n = ++sequence;
  let status = 0;
  let hung = false;
  try {
    let res: Response;
    if (op === 'hit') res = await fetch(`${gateway}/`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    else if (op === 'joke-read') {
      res = await fetch(`${gateway}/jokes?limit=5`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } else if (op === 'joke-write') {
      res = await fetch(`${gateway}/jokes`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ joke: `Drill joke number ${n} of run ${TOKEN.slice(0, 8)}: why did the pod restart?` }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } else {
      res = await fetch(`${gateway}/images?dataset=drill&label=noise`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'image/png' },
        body: drillPng(n),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    }
    status = res.status;
    const text = await res.text();
    if (status === 201 && op === 'joke-write') jokeIds.push((JSON.parse(text) as { id: number }).id);
    if (status === 201 && op === 'image-upload') imageIds.push((JSON.parse(text) as { id: string }).id);
    if (status === 200 && op === 'hit') {
      const seen = /seen (\d+) times/.exec(text)?.[1];
      if (seen) hitCounts.push({ at, n: Number(seen) });
    }
  } catch (err) {
    hung = (err as Error).name === 'TimeoutError';
  }
  const ok = status >= 200 && status < 300;
  outcomes.push({ op, at, ms: Date.now() - at, ok, status, hung });
  return ok;
}

async function client(): Promise<void> {
  while (loadRunning) {
    // a refused connection fails at once; pause so a dead service is not hammered in a tight loop
    if (!(await request(pick()))) await sleep(FAILURE_PAUSE_MS);
  }
}

// --- faults -----------------------------------------------------------------------------------------

async function allReady(): Promise<boolean> {
  const answers = await Promise.all(
    servers.map(async (s) => {
      try {
        const res = await fetch(`${url(s.name)}/readyz`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    }),
  );
  return answers.every(Boolean);
}

/** Seconds from `since` until every service answers /readyz 200, polled every 50 ms (bounded). */
async function recoverySeconds(since: number): Promise<number> {
  while (Date.now() - since < RECOVERY_LIMIT_MS) {
    if (await allReady()) return (Date.now() - since) / 1000;
    await sleep(50);
  }
  return Number.POSITIVE_INFINITY;
}

interface FaultResult {
  fault: string;
  requests: number;
  failed: number;
  recoverS: number;
}
const results: FaultResult[] = [];

async function fault(name: string, inject: () => Promise<void>, restore: () => Promise<void>): Promise<void> {
  const started = Date.now();
  await inject();
  await restore();
  const back = Date.now();
  const recoverS = await recoverySeconds(back);
  await sleep(1000);
  const window = outcomes.filter((o) => o.at >= started && o.at <= Date.now());
  const result = { fault: name, requests: window.length, failed: window.filter((o) => !o.ok).length, recoverS };
  results.push(result);
  say(
    `${name}: ${result.failed} of ${result.requests} requests failed, ready again ${recoverS.toFixed(2)} s after it was back`,
  );
  await sleep(SETTLE_MS);
}

let redisBackAt = Number.POSITIVE_INFINITY;
const restartDependency = (server: PrivateServer) =>
  fault(
    `restart ${server.name}`,
    async () => {
      await server.stop();
      await sleep(HOLD_MS);
    },
    async () => {
      await server.start();
      if (server === redis) redisBackAt = Date.now();
    },
  );

const killService = (svc: NativeService) =>
  fault(
    `SIGKILL ${svc.name}`,
    async () => {
      killing.add(svc.name);
      const proc = processes.get(svc.name);
      if (!proc || proc.exited) throw new Error(`${svc.name} is not running`);
      const gone = once(proc.child, 'exit');
      proc.child.kill('SIGKILL');
      await gone;
      // Docker restarts a container 100 ms after it exits, doubling on each further exit
      await sleep(100);
    },
    async () => {
      try {
        processes.set(svc.name, await stack.start(specOf(svc)));
      } finally {
        killing.delete(svc.name);
      }
    },
  );

// --- the run ----------------------------------------------------------------------------------------

const loadStarted = Date.now();
const clients = Array.from({ length: CONCURRENCY }, () => client());
say(`load: ${CONCURRENCY} clients through ${gateway}; faults start in ${WARM_UP_MS / 1000} s`);
await sleep(WARM_UP_MS);
const baselineFailed = outcomes.filter((o) => !o.ok).length;

let hitsBeforeRedis = 0;
try {
  for (const server of [redis, postgres, nats]) {
    if (server === redis) hitsBeforeRedis = Math.max(0, ...hitCounts.map((h) => h.n));
    await restartDependency(server);
  }
  for (const svc of servers) await killService(svc);
} catch (err) {
  say(`fault injection failed: ${(err as Error).message}`);
}
loadRunning = false;
await Promise.all(clients);
supervising = false;
await supervisor;
const loadSeconds = (Date.now() - loadStarted) / 1000;

// --- checks -----------------------------------------------------------------------------------------

async function psql(database: string, sql: string): Promise<string> {
  const { stdout } = await run('psql', [
    '-h',
    '127.0.0.1',
    '-p',
    String(postgres.port),
    '-U',
    'postgres',
    '-d',
    database,
    '-Atc',
    sql,
  ]);
  return stdout.trim();
}

async function missing(paths: string[]): Promise<string[]> {
  const lost: string[] = [];
  for (let i = 0; i < paths.length; i += 8) {
    const batch = paths.slice(i, i + 8);
    const answers = await Promise.all(
      batch.map((path) =>
        fetch(`${gateway}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).then((r) => {
          void r.body?.cancel();
          return r.status;
        }),
      ),
    );
    answers.forEach((status, j) => {
      if (status !== 200) lost.push(`${batch[j]} (${status})`);
    });
  }
  return lost;
}

/** Waits (bounded) until the relay has published every event and the worker has analysed every image. */
async function drained(): Promise<{ unsent: number; unanalysed: number }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const unsent = Number(await psql('images', 'SELECT count(*) FROM outbox WHERE sent_at IS NULL'));
    const unanalysed = Number(await psql('images', 'SELECT count(*) FROM images WHERE analysis_status IS NULL'));
    if ((unsent === 0 && unanalysed === 0) || Date.now() > deadline) return { unsent, unanalysed };
    await sleep(500);
  }
}

/** Messages in the events stream, from the NATS monitoring endpoint. */
async function streamMessages(stream: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${nats.monitorPort}/jsz?streams=true`);
  const body = (await res.json()) as {
    account_details?: Array<{ stream_detail?: Array<{ name: string; state: { messages: number } }> }>;
  };
  const found = body.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === stream);
  return found?.state.messages ?? 0;
}

const problems: string[] = [];
say('checking that every acknowledged write is there');
const lostJokes = await missing(jokeIds.map((id) => `/jokes/${id}`));
const lostImages = await missing(imageIds.map((id) => `/images/${id}`));
if (lostJokes.length) problems.push(`${lostJokes.length} acknowledged jokes lost: ${lostJokes.slice(0, 5).join(', ')}`);
if (lostImages.length)
  problems.push(`${lostImages.length} acknowledged images lost: ${lostImages.slice(0, 5).join(', ')}`);

const okHits = outcomes.filter((o) => o.op === 'hit' && o.ok).length;
const finalHits = Number(/seen (\d+) times/.exec(await (await fetch(`${gateway}/`)).text())?.[1] ?? 0);
if (finalHits < okHits) problems.push(`the counter says ${finalHits} but ${okHits} hits were answered`);
// the counter persists like Compose's Redis (append-only), so a restart must not take counts back
const afterRedis = hitCounts.filter((h) => h.at > redisBackAt && h.n <= hitsBeforeRedis).length;
if (afterRedis > 0) problems.push(`${afterRedis} hits after the Redis restart counted from below ${hitsBeforeRedis}`);

const events = await drained();
const outboxRows = Number(await psql('images', 'SELECT count(*) FROM outbox'));
const createdEvents = Number(await psql('images', "SELECT count(*) FROM outbox WHERE type = 'created'"));
const streamed = await streamMessages(process.env.EVENTS_STREAM ?? 'IMAGES');
if (events.unsent > 0) problems.push(`${events.unsent} events never published`);
if (events.unanalysed > 0) problems.push(`${events.unanalysed} images never analysed by the worker`);
if (streamed !== outboxRows) problems.push(`the stream holds ${streamed} messages for ${outboxRows} events`);
if (createdEvents < imageIds.length) problems.push(`${createdEvents} created events for ${imageIds.length} new images`);

if (crashes.length) problems.push(...crashes);
const hung = outcomes.filter((o) => o.hung);
if (hung.length) problems.push(`${hung.length} requests hung past ${REQUEST_TIMEOUT_MS / 1000} s`);
for (const r of results) {
  if (!(r.recoverS <= RECOVERY_TARGET_S)) problems.push(`${r.fault}: ready again after ${r.recoverS} s`);
}

// --- report -----------------------------------------------------------------------------------------

const slowest = Math.max(...outcomes.map((o) => o.ms));
const pad = (text: string, width: number) => text.padEnd(width);
process.stdout.write(`\n${pad('fault', 24)} ${pad('requests', 9)} ${pad('failed', 7)} ready again after\n`);
for (const r of results) {
  process.stdout.write(
    `${pad(r.fault, 24)} ${pad(String(r.requests), 9)} ${pad(String(r.failed), 7)} ${r.recoverS.toFixed(2)} s\n`,
  );
}
process.stdout.write(`
load: ${outcomes.length} requests in ${loadSeconds.toFixed(0)} s (${baselineFailed} failed before the first fault), slowest ${slowest} ms, ${hung.length} hung
writes acknowledged: ${jokeIds.length} jokes, ${imageIds.length} images; missing afterwards: ${lostJokes.length} jokes, ${lostImages.length} images
counter: ${okHits} hits answered, counter at ${finalHits}; ${afterRedis} answers after the Redis restart showed a count at or below the ${hitsBeforeRedis} seen before it
events: ${outboxRows} in the outbox (${createdEvents} created), ${streamed} in the stream, ${events.unsent} unpublished, ${events.unanalysed} images not analysed
${problems.length === 0 ? 'all targets met' : `targets missed:\n  ${problems.join('\n  ')}`}
`);

await shutdown();
process.exit(problems.length === 0 ? 0 : 1);

async function shutdown(): Promise<void> {
  await stack.stop();
  await Promise.all(infra.map((s) => s.destroy().catch(() => {})));
  await rm(scratch, { recursive: true, force: true });
}
