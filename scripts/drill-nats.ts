// `npm run drill:nats`: what the Helm values promise, on a real cluster. Three nats-server (2.10 or
// newer, sync_interval: always) nodes on loopback, the images service and its worker with a stream
// of three copies (EVENTS_REPLICAS=3), then the stream's leader SIGKILLed in the middle of an upload
// run and again in the middle of an import. Checks that every acknowledged image has exactly one
// created event in the stream and was analysed. The shared NATS, PostgreSQL and Redis are untouched:
// the cluster is the drill's own, the database a private one on the shared PostgreSQL.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { freePort } from '../bench/lib/ports.ts';
import { describeTail, Stack } from '../bench/lib/stack.ts';
import { createTestDatabase } from '../services/images/test/helpers/database.ts';
import { writeIdx } from '../services/images/test/helpers/datasets.ts';
import { drillPng } from './lib/png.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    uploads: { type: 'string', default: '8' },
    'import-size': { type: 'string', default: '20000' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(`Usage: npm run drill:nats [-- --uploads 8 --import-size 20000]

Starts a 3-node NATS cluster (nats-server 2.10 or newer: NATS_SERVER=/path/to/nats-server, else the
one on PATH), the images service and images-worker with EVENTS_REPLICAS=3, SIGKILLs the stream
leader during an upload run (--uploads clients) and during an IDX import of --import-size images,
and checks every acknowledged image has one event in the stream and its analysis. About a minute.
`);
  process.exit(0);
}

const say = (line: string) => process.stdout.write(`drill:nats: ${line}\n`);
const UPLOAD_CLIENTS = Number(values.uploads);
const IMPORT_SIZE = Number(values['import-size']);
const UPLOAD_RUN_MS = 8000;
const KILL_AFTER_MS = 3000;
const SETTLE_LIMIT_MS = 600_000;

const natsServer = process.env.NATS_SERVER ?? 'nats-server';
const version = /v(\d+)\.(\d+)/.exec(execFileSync(natsServer, ['--version'], { encoding: 'utf8' }));
if (!version || Number(version[1]) < 2 || (Number(version[1]) === 2 && Number(version[2]) < 10)) {
  process.stderr.write(
    `drill:nats needs nats-server 2.10 or newer for sync_interval (found ${version?.[0] ?? 'none'} at "${natsServer}"). ` +
      'On Debian bookworm: apt-get download nats-server/trixie && dpkg-deb -x nats-server_*.deb ./nats, then NATS_SERVER=./nats/usr/sbin/nats-server\n',
  );
  process.exit(2);
}

const scratch = await mkdtemp(join(tmpdir(), 'berth-drill-nats-'));
const stack = new Stack();
const tag = randomBytes(4).toString('hex');
const streamName = `DRILL_${tag}`;
const subjectPrefix = `drill_${tag}`;

// --- a three-node cluster ---------------------------------------------------------------------------

interface Node {
  name: string;
  client: number;
  monitor: number;
  cluster: number;
  conf: string;
  proc?: ReturnType<typeof spawn>;
}
const nodes: Node[] = [];
for (let i = 1; i <= 3; i++) {
  nodes.push({
    name: `n${i}`,
    client: await freePort(),
    monitor: await freePort(),
    cluster: await freePort(),
    conf: join(scratch, `n${i}.conf`),
  });
}
for (const node of nodes) {
  const routes = nodes.map((n) => `nats-route://127.0.0.1:${n.cluster}`).join(', ');
  await mkdir(join(scratch, node.name), { recursive: true });
  await writeFile(
    node.conf,
    `server_name: ${node.name}
listen: 127.0.0.1:${node.client}
http: 127.0.0.1:${node.monitor}
jetstream { store_dir: "${join(scratch, node.name)}", sync_interval: always }
cluster { name: berth-drill, listen: 127.0.0.1:${node.cluster}, routes: [${routes}] }
`,
  );
}

function startNode(node: Node): void {
  node.proc = spawn(natsServer, ['-c', node.conf], { stdio: 'ignore' });
}
function killNode(node: Node): void {
  node.proc?.kill('SIGKILL');
  node.proc = undefined;
}
process.on('exit', () => {
  for (const node of nodes) node.proc?.kill('SIGKILL');
});

/** Waits until every running node answers /healthz with JetStream up (a meta leader elected). */
async function clusterHealthy(limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const answers = await Promise.all(
      nodes
        .filter((n) => n.proc)
        .map(async (n) => {
          const res = await fetch(`http://127.0.0.1:${n.monitor}/healthz?js-enabled-only=true`).catch(() => null);
          return res?.ok === true;
        }),
    );
    if (answers.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error('the NATS cluster did not become healthy');
    await sleep(200);
  }
}

say(`starting 3 nodes of ${version[0]} with sync_interval: always`);
for (const node of nodes) startNode(node);
await clusterHealthy();

// --- the images service and its worker --------------------------------------------------------------

const db = await createTestDatabase();
const imagesPort = await freePort();
const workerPort = await freePort();
const imagesUrl = `http://127.0.0.1:${imagesPort}`;
const natsUrl = nodes.map((n) => `nats://127.0.0.1:${n.client}`)[0] as string;
const common = {
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  DATABASE_URL: db.url,
  IMAGES_DIR: join(scratch, 'images'),
  NATS_URL: natsUrl,
  EVENTS_STREAM: streamName,
  EVENTS_SUBJECT_PREFIX: subjectPrefix,
  EVENTS_REPLICAS: '3',
};
let nc: NatsConnection | undefined;
let pool: pg.Pool | undefined;
let failed = false;
let cleaning: Promise<void> | undefined;
/** Stops everything the drill started and removes its data; once, whichever way the drill ends. */
function cleanUp(): Promise<void> {
  const step = async (work: () => Promise<unknown> | unknown) => {
    try {
      await work();
    } catch (err) {
      say(`clean-up: ${(err as Error).message}`);
    }
  };
  cleaning ??= (async () => {
    await step(() => nc?.close());
    await step(() => pool?.end());
    await step(() => stack.stop());
    for (const node of nodes) killNode(node);
    await step(() => db.drop());
    await step(() => rm(scratch, { recursive: true, force: true }));
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping`);
    void cleanUp().then(() => process.exit(1));
  });
}
try {
  await stack.start({
    name: 'images',
    command: process.execPath,
    args: ['--max-old-space-size=256', 'src/main.ts'],
    cwd: join(root, 'services', 'images'),
    env: { ...common, PORT: String(imagesPort) },
    readyUrl: `${imagesUrl}/readyz`,
    readyTimeoutMs: 60_000,
  });
  await stack.start({
    name: 'images-worker',
    command: process.execPath,
    args: ['src/worker.ts'],
    cwd: join(root, 'services', 'images'),
    env: { ...common, PORT: String(workerPort), WORKER_CONSUMER: `drill-${tag}` },
    readyUrl: `http://127.0.0.1:${workerPort}/readyz`,
    readyTimeoutMs: 60_000,
  });
  nc = await connect({ servers: nodes.map((n) => `nats://127.0.0.1:${n.client}`), maxReconnectAttempts: -1 });
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  const jsm = await nc.jetstreamManager({ timeout: 1000 });
  const deadline = Date.now() + 30_000;
  while ((await jsm.streams.info(streamName).catch(() => undefined)) === undefined && Date.now() < deadline) {
    // the relay makes the stream once it has something to publish
    await fetch(`${imagesUrl}/images?dataset=warm-up`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: drillPng(0),
    });
    await sleep(300);
  }

  /** The node leading the stream now, as JetStream reports it. */
  async function leader(): Promise<Node> {
    for (let i = 0; i < 100; i++) {
      const info = await jsm.streams.info(streamName).catch(() => undefined);
      const name = info?.cluster?.leader;
      const node = nodes.find((n) => n.name === name && n.proc);
      if (node) return node;
      await sleep(100);
    }
    throw new Error('the stream has no leader');
  }

  /** SIGKILLs the stream's leader, waits for a new one, starts the killed node again; the seconds a leader was missing. */
  async function killLeader(): Promise<{ killed: string; newLeader: string; seconds: number }> {
    const victim = await leader();
    const at = performance.now();
    killNode(victim);
    const next = await leader();
    const seconds = (performance.now() - at) / 1000;
    startNode(victim);
    return { killed: victim.name, newLeader: next.name, seconds };
  }

  // --- an upload run with the leader killed in its middle --------------------------------------------

  const acknowledged = new Set<string>();
  let sent = 0;
  let refused = 0;
  let n = 1;
  const runUntil = Date.now() + UPLOAD_RUN_MS;
  const clients = Array.from({ length: UPLOAD_CLIENTS }, async () => {
    while (Date.now() < runUntil) {
      const res = await fetch(`${imagesUrl}/images?dataset=drill-upload`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: drillPng(n++),
        signal: AbortSignal.timeout(10_000),
      }).catch(() => undefined);
      sent++;
      if (res?.status === 201) acknowledged.add(((await res.json()) as { id: string }).id);
      else {
        refused++;
        await res?.body?.cancel();
      }
    }
  });
  await sleep(KILL_AFTER_MS);
  const uploadKill = await killLeader();
  say(
    `uploads: killed leader ${uploadKill.killed}, ${uploadKill.newLeader} led after ${uploadKill.seconds.toFixed(2)} s`,
  );
  await Promise.all(clients);
  say(`uploads: ${sent} sent, ${acknowledged.size} acknowledged, ${refused} refused`);
  await clusterHealthy();

  // --- an import with the leader killed in its middle ------------------------------------------------

  const idx = await writeIdx(scratch, { count: IMPORT_SIZE, seed: 7 });
  const form = new FormData();
  form.set('dataset', 'drill-import');
  form.append('files', new Blob([await readFile(idx.images)]), 'train-images-idx3-ubyte');
  form.append('files', new Blob([await readFile(idx.labels)]), 'train-labels-idx1-ubyte');
  const posted = await fetch(`${imagesUrl}/images/imports`, { method: 'POST', body: form });
  if (posted.status !== 202) throw new Error(`the import was refused: ${posted.status} ${await posted.text()}`);
  const { id: jobId } = (await posted.json()) as { id: string };
  const job = async () =>
    (await (await fetch(`${imagesUrl}/images/imports/${jobId}`)).json()) as {
      status: string;
      processed: number;
      imported: number;
    };
  while ((await job()).processed < IMPORT_SIZE / 5) await sleep(50);
  const importKill = await killLeader();
  say(
    `import: killed leader ${importKill.killed}, ${importKill.newLeader} led after ${importKill.seconds.toFixed(2)} s`,
  );
  let current = await job();
  for (const limit = Date.now() + SETTLE_LIMIT_MS; current.status !== 'completed' && Date.now() < limit; ) {
    await sleep(200);
    current = await job();
  }
  if (current.status !== 'completed') throw new Error(`the import ended ${current.status}`);
  say(`import: ${current.imported} images imported`);

  // --- what was promised ---------------------------------------------------------------------------

  const expected = new Set(acknowledged);
  const { rows } = await pool.query<{ id: string }>("SELECT id::text FROM images WHERE dataset = 'drill-import'");
  for (const row of rows) expected.add(row.id);
  // how long until every event is sent and every image analysed, and the longest time nothing moved
  const settleStart = performance.now();
  let longestStallS = 0;
  let lastLeft = -1;
  let lastMove = performance.now();
  for (const limit = Date.now() + SETTLE_LIMIT_MS; ; ) {
    const { rows: left } = await pool.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL)::int
            + (SELECT count(*) FROM images WHERE analysis_status IS NULL)::int AS n`,
    );
    const n = left[0]?.n ?? 0;
    if (n !== lastLeft) {
      lastLeft = n;
      lastMove = performance.now();
    }
    longestStallS = Math.max(longestStallS, (performance.now() - lastMove) / 1000);
    if (n === 0) break;
    if (Date.now() > limit) throw new Error(`${n} events unsent or images unanalysed after the run`);
    say(`waiting: ${n} events unsent or images unanalysed`);
    await sleep(1000);
  }
  const settleS = (performance.now() - settleStart) / 1000;
  const created = new Map<string, number>();
  const ids = new Map<string, number>();
  const info = await jsm.streams.info(streamName);
  let read = 0;
  // every stored message by sequence, 64 requests at a time
  for (let from = info.state.first_seq; from <= info.state.last_seq; from += 64) {
    const seqs = Array.from({ length: Math.min(64, info.state.last_seq - from + 1) }, (_, i) => from + i);
    const got = await Promise.all(seqs.map((seq) => jsm.streams.getMessage(streamName, { seq })));
    for (const m of got) {
      read++;
      const msgId = m.header.get('Nats-Msg-Id');
      ids.set(msgId, (ids.get(msgId) ?? 0) + 1);
      const body = m.json<{ type: string; imageId: string }>();
      if (body.type === 'created') created.set(body.imageId, (created.get(body.imageId) ?? 0) + 1);
    }
  }
  const missing = [...expected].filter((id) => !created.has(id));
  const twice = [...ids.values()].filter((count) => count > 1).length;
  const { rows: notDone } = await pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM images WHERE analysis_status IS DISTINCT FROM 'done'",
  );
  const figures = {
    natsServer: version[0],
    uploads: { sent, acknowledged: acknowledged.size, refused, leaderKill: uploadKill },
    import: { images: current.imported, leaderKill: importKill },
    stream: { messages: read, replicas: info.config.num_replicas, duplicateIds: twice },
    settle: { seconds: Number(settleS.toFixed(1)), longestStallSeconds: Number(longestStallS.toFixed(1)) },
    acknowledgedImages: expected.size,
    withoutCreatedEvent: missing.length,
    notAnalysed: notDone[0]?.n ?? -1,
  };
  say(JSON.stringify(figures));
  const dir = join(root, 'test-results', 'drill-nats');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  if (missing.length > 0 || twice > 0 || figures.notAnalysed !== 0) {
    failed = true;
    say(
      `FAILED: ${missing.length} acknowledged images without an event, ${twice} event ids twice, ${figures.notAnalysed} not analysed`,
    );
  } else say('every acknowledged image has one created event and its analysis; nothing twice');
} catch (err) {
  failed = true;
  say(`failed: ${(err as Error).message}`);
  for (const proc of stack.crashed()) say(`${proc.spec.name} exited:\n${describeTail(proc)}`);
} finally {
  await cleanUp();
}
process.exit(failed ? 1 : 0);
