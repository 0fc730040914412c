// The images service's targets (issues 4 and 5), through the gateway:
//   import of a 60,000-image 28x28 IDX set >= 2,000 images/s, images RSS < 300 MB throughout;
//   single uploads at 16 concurrent >= 500 images/s; GET /images/:id/file >= 0.7 x GET /;
//   the outbox relay keeping up with the import; upload -> images-worker effect p99 <= 1 s at 100/s.
// Part of npm run bench (alone: npm run bench -- --only images); BENCH_IMAGES sets the import size.
import { createHash } from 'node:crypto';
import { openAsBlob } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dropDatabase, withDatabase } from '@berth/service-kit';
import autocannon, { type Options } from 'autocannon';
import { connect } from 'nats';
import { deleteStream } from '../../services/images/src/events/stream.ts';
import { encodePng } from '../../services/images/src/formats/index.ts';
import { prepareDatabase } from '../../services/images/src/setup.ts';
import { Store } from '../../services/images/src/storage/store.ts';
import type { LoadResult } from '../lib/load.ts';
import { seeded } from '../lib/random.ts';
import { type BenchContext, type Check, check, type Scenario, type ScenarioReport } from '../lib/scenario.ts';
import type { Stack } from '../lib/stack.ts';
import { Samples } from '../lib/stats.ts';
import { type EffectFigures, measureEffectLatency, startWorker, watchOutbox } from './events.ts';

/** How many images the import target is stated for. */

/** Connections for the single-upload run, as the issue states it. */
export const UPLOAD_CONCURRENCY = 16;

/**
 * Digit-like 28x28 greyscale images: a black field with two to four bright pen strokes, each a
 * random walk drawn with a soft 3x3 brush. Like MNIST they are mostly zeros with a few hundred
 * inked pixels, so their PNGs are MNIST-sized (a few hundred bytes), and no two are alike.
 */
export function digitPixels(count: number, seed = 20_240_611): { pixels: Buffer; labels: Buffer } {
  const random = seeded(seed);
  const size = 28;
  const pixels = Buffer.alloc(count * size * size);
  const labels = Buffer.alloc(count);
  for (let n = 0; n < count; n++) {
    labels[n] = Math.floor(random() * 10);
    const base = n * size * size;
    const strokes = 2 + Math.floor(random() * 3);
    for (let s = 0; s < strokes; s++) {
      let x = 6 + random() * 16;
      let y = 4 + random() * 20;
      let angle = random() * Math.PI * 2;
      const steps = 10 + Math.floor(random() * 20);
      for (let step = 0; step < steps; step++) {
        angle += (random() - 0.5) * 0.9;
        x = Math.min(size - 2, Math.max(1, x + Math.cos(angle)));
        y = Math.min(size - 2, Math.max(1, y + Math.sin(angle)));
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const at = base + (Math.round(y) + dy) * size + Math.round(x) + dx;
            const ink = dx === 0 && dy === 0 ? 255 : 90 + Math.floor(random() * 80);
            if ((pixels[at] as number) < ink) pixels[at] = ink;
          }
        }
      }
    }
  }
  return { pixels, labels };
}

/** Writes an MNIST-style IDX pair of `count` digit-like images into dir. */
export async function writeBenchIdx(dir: string, count: number): Promise<{ images: string; labels: string }> {
  const { pixels, labels } = digitPixels(count);
  return writeIdx(dir, 'train', pixels, labels);
}

/** Writes 28x28 images (784 bytes each, one after another) and their labels as an IDX pair named for the split. */
export async function writeIdx(
  dir: string,
  split: 'train' | 't10k',
  pixels: Uint8Array,
  labels: Uint8Array,
): Promise<{ images: string; labels: string }> {
  const count = labels.length;
  const imagesHeader = Buffer.alloc(16);
  imagesHeader.writeUInt32BE(0x00000803, 0);
  imagesHeader.writeUInt32BE(count, 4);
  imagesHeader.writeUInt32BE(28, 8);
  imagesHeader.writeUInt32BE(28, 12);
  const labelsHeader = Buffer.alloc(8);
  labelsHeader.writeUInt32BE(0x00000801, 0);
  labelsHeader.writeUInt32BE(count, 4);
  const images = join(dir, `${split}-images-idx3-ubyte`);
  const labelsPath = join(dir, `${split}-labels-idx1-ubyte`);
  await writeFile(images, Buffer.concat([imagesHeader, pixels]));
  await writeFile(labelsPath, Buffer.concat([labelsHeader, labels]));
  return { images, labels: labelsPath };
}

/** A private database and IMAGES_DIR for one benchmark run, and how to remove them. */
export interface ImagesBenchState {
  env: {
    DATABASE_URL: string;
    IMAGES_DIR: string;
    NODE_OPTIONS: string;
    NATS_URL: string;
    EVENTS_STREAM: string;
    EVENTS_SUBJECT_PREFIX: string;
  };
  cleanup(): Promise<void>;
}

/**
 * The V8 settings the images service runs with in every deployment (compose, Kubernetes, npm
 * start): a 4 MiB young generation and a 256 MB old one. Import batches live just long enough to
 * survive a scavenge, so with V8's defaults the young generation grows to over 100 MiB of mostly
 * garbage (decision 0052), and on a large machine the old one is let grow to three times its live
 * size before it is collected (decision 0107).
 */
export const IMAGES_NODE_OPTIONS = '--max-semi-space-size=4 --max-old-space-size=256';

/**
 * Creates and migrates a database of the run's own on the given server and a temp IMAGES_DIR:
 * the environment to start the images service with (bench/run.ts passes it in serviceEnv).
 */
export async function prepareImagesBench(serverUrl: string, natsUrl: string): Promise<ImagesBenchState> {
  const run = `${process.pid}_${Date.now().toString(36)}`;
  const url = withDatabase(serverUrl, `bench_images_${run}`);
  await prepareDatabase(url);
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-images-'));
  // a stream and subjects of the run's own: JetStream refuses two streams with overlapping subjects
  const stream = `BENCH_IMAGES_${run}`;
  return {
    env: {
      DATABASE_URL: url,
      IMAGES_DIR: dir,
      NODE_OPTIONS: IMAGES_NODE_OPTIONS,
      NATS_URL: natsUrl,
      EVENTS_STREAM: stream,
      EVENTS_SUBJECT_PREFIX: `bench_${run}`,
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
      await dropDatabase(url);
      const nc = await connect({ servers: natsUrl, timeout: 2000 });
      try {
        await deleteStream(nc, stream);
      } finally {
        await nc.close();
      }
    },
  };
}

/** The bearer token writes carry through the gateway (its API_TOKENS), when it asks for one. */
function authorization(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Resident memory of a process in MiB, from /proc; NaN where there is no /proc. */
export async function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** What the import run measured. */
export interface ImportFigures {
  images: number;
  seconds: number;
  imagesPerSecond: number;
  /** Highest VmRSS sampled every 50 ms from the upload's start to the job's end. */
  peakRssMiB: number;
  /** RSS just before the upload, for reference. */
  startRssMiB: number;
  job: Record<string, unknown>;
}

/**
 * Uploads the IDX pair to POST /images/imports through the gateway and follows the job to its
 * end: images/s end to end (upload included) and the images service's peak RSS meanwhile.
 */
export async function measureImport(
  gatewayUrl: string,
  pid: number | undefined,
  files: { images: string; labels: string },
  dataset: string,
  token?: string,
  signal?: AbortSignal,
): Promise<ImportFigures> {
  const startRssMiB = pid ? await rssMiB(pid) : Number.NaN;
  let peak = startRssMiB;
  let sampling = true;
  const sampler = (async () => {
    while (sampling && pid) {
      const now = await rssMiB(pid);
      if (!(now <= peak)) peak = Number.isNaN(peak) ? now : Math.max(peak, now);
      await sleep(50);
    }
  })();
  const started = performance.now();
  try {
    const form = new FormData();
    form.set('dataset', dataset);
    // the file names say the split (train-*, t10k-*)
    form.append('files', await openAsBlob(files.images), basename(files.images));
    form.append('files', await openAsBlob(files.labels), basename(files.labels));
    const posted = await fetch(`${gatewayUrl}/images/imports`, {
      method: 'POST',
      body: form,
      headers: authorization(token),
      signal,
    });
    if (posted.status !== 202) throw new Error(`The import was refused: ${posted.status} ${await posted.text()}`);
    const { id } = (await posted.json()) as { id: string };
    for (;;) {
      signal?.throwIfAborted();
      const job = (await (await fetch(`${gatewayUrl}/images/imports/${id}`, { signal })).json()) as Record<
        string,
        unknown
      >;
      if (job.status !== 'queued' && job.status !== 'running') {
        const seconds = (performance.now() - started) / 1000;
        if (job.status !== 'completed') throw new Error(`The import ended ${job.status}: ${JSON.stringify(job)}`);
        const images = job.imported as number;
        return { images, seconds, imagesPerSecond: images / seconds, peakRssMiB: peak, startRssMiB, job };
      }
      await sleep(100);
    }
  } finally {
    sampling = false;
    await sampler;
  }
}

/** Distinct small PNGs for the upload run, so every upload is a new image (201), never a duplicate. */
export function uploadBodies(count: number, seed = 99): Buffer[] {
  const { pixels } = digitPixels(count, seed);
  const bodies: Buffer[] = [];
  for (let n = 0; n < count; n++) {
    bodies.push(encodePng({ width: 28, height: 28, channels: 1, pixels: pixels.subarray(n * 784, (n + 1) * 784) }));
  }
  return bodies;
}

/** One request template of autocannon's `requests` option (not in the shared type declarations). */
interface CannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Called before every request; returns the request to send. */
  setupRequest?: (request: CannonRequest) => CannonRequest;
}

type Cannon = Options & { requests: CannonRequest[] };

async function cannon(options: Cannon, signal?: AbortSignal): Promise<LoadResult> {
  signal?.throwIfAborted();
  const samples = new Samples();
  const instance = autocannon(options as Options);
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) samples.push(ms);
  });
  const abort = () => instance.stop();
  signal?.addEventListener('abort', abort, { once: true });
  try {
    const result = await instance;
    signal?.throwIfAborted();
    return {
      url: options.url as string,
      mode: 'closed',
      connections: options.connections ?? 1,
      seconds: result.duration,
      rps: result['2xx'] / result.duration,
      ok: result['2xx'],
      non2xx: result.non2xx,
      errors: result.errors,
      latency: samples.summarize(),
    };
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

/** POST /images with a raw image/png body, a different image each time, at `connections` at once. */
export function measureUploads(
  gatewayUrl: string,
  bodies: Buffer[],
  options: { connections: number; seconds: number; dataset: string; token?: string; signal?: AbortSignal },
): Promise<LoadResult> {
  let next = 0;
  return cannon(
    {
      url: gatewayUrl,
      connections: options.connections,
      duration: options.seconds,
      requests: [
        {
          method: 'POST',
          path: `/images?dataset=${options.dataset}`,
          headers: { 'content-type': 'image/png', ...authorization(options.token) },
          setupRequest: (request) => {
            request.body = bodies[next++ % bodies.length];
            return request;
          },
        },
      ],
    },
    options.signal,
  );
}

/** GET /images/:id/file over many ids, so the run is not one hot row. */
export function measureFileGets(
  gatewayUrl: string,
  ids: string[],
  options: { connections: number; seconds: number; signal?: AbortSignal },
): Promise<LoadResult> {
  let next = 0;
  return cannon(
    {
      url: gatewayUrl,
      connections: options.connections,
      duration: options.seconds,
      requests: [
        {
          method: 'GET',
          path: `/images/${ids[0]}/file`,
          setupRequest: (request) => {
            request.path = `/images/${ids[next++ % ids.length]}/file`;
            return request;
          },
        },
      ],
    },
    options.signal,
  );
}

/** GET / (the counter's hit page) through the gateway, the yardstick for file reads. */
export function measureRoot(
  gatewayUrl: string,
  options: { connections: number; seconds: number; signal?: AbortSignal },
): Promise<LoadResult> {
  return cannon(
    { url: `${gatewayUrl}/`, connections: options.connections, duration: options.seconds, requests: [{}] },
    options.signal,
  );
}

async function someIds(gatewayUrl: string, dataset: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  while (ids.length < count) {
    const query: string = `/images?dataset=${dataset}&limit=500${cursor ? `&cursor=${cursor}` : ''}`;
    const page = (await (await fetch(`${gatewayUrl}${query}`)).json()) as {
      items: { id: string }[];
      nextCursor: string | null;
    };
    ids.push(...page.items.map((item) => item.id));
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return ids.slice(0, count);
}

/**
 * The machine's ceiling for one file per image: small files written, flushed, renamed into place
 * and their folders flushed, in batches of 1,000, by the store's own batch calls, into `dir` on
 * the file system the images service writes to. The import is measured against it in the same
 * run. The files are left for the caller to remove once nothing else is measured: ext4 skips
 * inodes freed in the last minutes when it hands out new ones, looking each one up, so deleting
 * thousands of files just before a measurement slows the file creation it measures.
 */
export async function measureFileCeiling(count: number, dir: string, signal?: AbortSignal): Promise<number> {
  const store = new Store(dir);
  const bodies = uploadBodies(count, 5);
  const started = performance.now();
  for (let at = 0; at < count; at += 1000) {
    signal?.throwIfAborted();
    const batch = bodies.slice(at, at + 1000).map((bytes) => ({
      bytes,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    }));
    await store.placeSynced(await store.stageMany(batch));
  }
  return count / ((performance.now() - started) / 1000);
}

/** Settings for one images benchmark. */
export interface ImagesBenchOptions {
  gatewayUrl: string;
  /** The images service's pid, for its RSS. */
  pid: number | undefined;
  /** False when the counter is not running: the file GET vs GET / comparison is left out. */
  haveCounter: boolean;
  images: number;
  seconds: number;
  connections: number;
  /** A token from the gateway's API_TOKENS, for the writes. */
  token?: string;
  /** The images service's database, for the outbox and the worker's results. */
  databaseUrl: string;
  /** The env the images service runs with; the images-worker gets the same. */
  imagesEnv: Record<string, string>;
  /** Where the images-worker is started, after the import and upload runs. */
  stack: Stack;
  signal?: AbortSignal;
  log: (line: string) => void;
}

/** Files written for the file-ceiling measurement. */
const FILE_CEILING_COUNT = 10_000;

/** Uploads a second for the upload-to-worker-effect run, as the issue states it. */
export const EFFECT_RATE = 100;

function line(label: string, result: LoadResult): string {
  const failed = result.non2xx + result.errors;
  return `${label.padEnd(36)} ${result.rps.toFixed(0).padStart(7)} /s   p50 ${result.latency.p50.toFixed(1)} ms   p99 ${result.latency.p99.toFixed(1)} ms${failed ? `   (${failed} failed)` : ''}`;
}

/** Runs the three measurements against a running stack and checks them against the issue's targets. */
export async function runImagesBench(options: ImagesBenchOptions): Promise<ScenarioReport> {
  const { gatewayUrl, log, signal } = options;
  const notes: string[] = [];
  const scratch = await mkdtemp(join(tmpdir(), 'berth-bench-idx-'));
  try {
    // upload -> worker effect first, on an idle worker with uploads at a steady rate; the worker is
    // then stopped, so the throughput runs below measure the API on its own
    const worker = await startWorker(options.stack, options.imagesEnv);
    const effects: EffectFigures = await measureEffectLatency({
      gatewayUrl,
      databaseUrl: options.databaseUrl,
      bodies: uploadBodies(EFFECT_RATE * options.seconds, 11),
      rate: EFFECT_RATE,
      seconds: options.seconds,
      dataset: 'bench-effects',
      token: options.token ?? '',
      signal,
    });
    await options.stack.stopOne(worker);
    log(
      `upload -> worker effect at ${EFFECT_RATE}/s: ${effects.uploads} uploads, p50 ${effects.p50.toFixed(0)} ms, ` +
        `p99 ${effects.p99.toFixed(0)} ms, max ${effects.max.toFixed(0)} ms` +
        (effects.failed ? ` (${effects.failed} failed: ${JSON.stringify(effects.failures)})` : ''),
    );

    log(`generating ${options.images} digit-like 28x28 images as an IDX pair`);
    const files = await writeBenchIdx(scratch, options.images);
    const { result: imported, outbox } = await watchOutbox(
      options.databaseUrl,
      () => measureImport(gatewayUrl, options.pid, files, 'bench-mnist', options.token, signal),
      signal,
    );
    log(
      `import of ${imported.images} images: ${imported.seconds.toFixed(1)} s, ${imported.imagesPerSecond.toFixed(0)} images/s, ` +
        `images RSS ${imported.startRssMiB.toFixed(0)} MiB before, peak ${imported.peakRssMiB.toFixed(0)} MiB`,
    );
    log(
      `outbox: ${outbox.events} events published at ${outbox.eventsPerSecond.toFixed(0)}/s, ` +
        `peak backlog ${outbox.peakBacklog}, drained ${outbox.drainSeconds.toFixed(1)} s after the job ended`,
    );
    // after the import, into the run's scratch folder, removed at the end with the rest
    const ceiling = await measureFileCeiling(FILE_CEILING_COUNT, join(scratch, 'ceiling'), signal);
    log(`file ceiling: ${ceiling.toFixed(0)} small files/s written, flushed and renamed into place by the store`);

    const bodies = uploadBodies(Math.max(2000, options.seconds * 2000), 7);
    await measureUploads(gatewayUrl, bodies.slice(0, 500), {
      connections: UPLOAD_CONCURRENCY,
      seconds: 1,
      dataset: 'bench-warmup',
      token: options.token,
      signal,
    });
    const uploads = await measureUploads(gatewayUrl, bodies, {
      connections: UPLOAD_CONCURRENCY,
      seconds: options.seconds,
      dataset: 'bench-uploads',
      token: options.token,
      signal,
    });
    log(line(`POST /images x${UPLOAD_CONCURRENCY}`, uploads));
    if (uploads.ok > bodies.length)
      notes.push('The upload run outran its distinct images; later uploads were duplicates');

    const ids = await someIds(gatewayUrl, 'bench-mnist', 2000);
    const file: LoadResult[] = [];
    const root: LoadResult[] = [];
    if (options.haveCounter) {
      const load = { connections: options.connections, seconds: options.seconds, signal };
      await measureFileGets(gatewayUrl, ids, { ...load, seconds: 2 });
      await measureRoot(gatewayUrl, { ...load, seconds: 2 });
      for (let round = 0; round < 2; round++) {
        // alternating the order keeps drift on a shared machine from favouring one side
        const pair = round === 0 ? ['file', 'root'] : ['root', 'file'];
        for (const which of pair) {
          if (which === 'file') {
            file.push(await measureFileGets(gatewayUrl, ids, load));
            log(line('GET /images/:id/file', file.at(-1) as LoadResult));
          } else {
            root.push(await measureRoot(gatewayUrl, load));
            log(line('GET /', root.at(-1) as LoadResult));
          }
          await sleep(500);
        }
      }
    } else {
      notes.push('GET /images/:id/file vs GET / left out: the counter is not running');
    }
    const median = (runs: LoadResult[]) => runs.map((r) => r.rps).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    const ratio = file.length && root.length ? (median(file) as number) / (median(root) as number) : Number.NaN;
    if (!Number.isNaN(ratio)) log(`file GET / GET / = ${ratio.toFixed(2)}`);

    const checks: Check[] = [
      check('import images/s ÷ 2,000', imported.imagesPerSecond / 2000, '>=', 1, 'x', []),
      // the issue's figure: one file per image, so 80 % of what the machine's disk takes
      check('import images/s ÷ file ceiling', imported.imagesPerSecond / ceiling, '>=', 0.8, 'x', []),
      check('import peak RSS ÷ 300 MB', (imported.peakRssMiB * 1.048576) / 300, '<=', 1, 'x', []),
      check(`uploads/s at ${UPLOAD_CONCURRENCY} ÷ 500`, uploads.rps / 500, '>=', 1, 'x', [uploads]),
      check('GET /images/:id/file ÷ GET /', ratio, '>=', 0.7, 'x', [...file, ...root]),
      // the relay keeps up when events leave as fast as images arrive: the backlog drains with the job
      check('outbox events/s ÷ import images/s', outbox.eventsPerSecond / imported.imagesPerSecond, '>=', 0.9, 'x', []),
      {
        ...check(`upload -> worker effect p99 at ${EFFECT_RATE}/s`, effects.p99, '<=', 1000, 'ms', []),
        ...(effects.failed > 0 ? { status: 'invalid' as const } : {}),
      },
    ];
    const row = (label: string, runs: LoadResult[]) => ({
      label,
      rps: median(runs) ?? Number.NaN,
      p50: runs[0]?.latency.p50 ?? Number.NaN,
      p99: runs[0]?.latency.p99 ?? Number.NaN,
      failures: runs.reduce((sum, r) => sum + r.non2xx + r.errors, 0),
    });
    return {
      sections: [
        {
          title: `Images through the gateway (${options.connections} connections for reads)`,
          rows: [
            row(`POST /images, ${UPLOAD_CONCURRENCY} at once`, [uploads]),
            ...(file.length ? [row('GET /images/:id/file', file), row('GET /', root)] : []),
          ],
          footer:
            `import: ${imported.images} images in ${imported.seconds.toFixed(1)} s = ${imported.imagesPerSecond.toFixed(0)} images/s (file ceiling ${ceiling.toFixed(0)}/s); images RSS peak ${imported.peakRssMiB.toFixed(0)} MiB\n` +
            `outbox during the import: ${outbox.eventsPerSecond.toFixed(0)} events/s, peak backlog ${outbox.peakBacklog}, drained ${outbox.drainSeconds.toFixed(1)} s after the job\n` +
            `upload -> images-worker effect at ${EFFECT_RATE}/s: p50 ${effects.p50.toFixed(0)} ms, p99 ${effects.p99.toFixed(0)} ms`,
        },
      ],
      checks,
      notes,
      clean: [uploads, ...file, ...root].every((r) => r.non2xx + r.errors === 0) && effects.failed === 0,
      data: {
        import: { ...imported, job: undefined },
        fileCeiling: ceiling,
        outbox,
        effects,
        uploads,
        fileGets: file,
        root,
      },
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * For npm run bench: needs images (started with prepareImagesBench's env) and the counter behind
 * the gateway.
 */
export const imagesScenario: Scenario = {
  name: 'images',
  summary: 'IDX import, single uploads and file reads on the images service, through the gateway',
  needs: ['images', 'counter'],
  run(ctx: BenchContext) {
    const images = ctx.stack.running.find((proc) => proc.spec.name === 'images');
    return runImagesBench({
      gatewayUrl: ctx.urls.gateway as string,
      pid: images?.child.pid,
      haveCounter: Boolean(ctx.urls.counter),
      images: ctx.options.images,
      seconds: ctx.options.seconds,
      connections: ctx.options.connections,
      token: ctx.apiToken,
      databaseUrl: ctx.serviceEnv('images').DATABASE_URL as string,
      imagesEnv: ctx.serviceEnv('images'),
      stack: ctx.stack,
      signal: ctx.signal,
      log: ctx.log,
    });
  },
};
