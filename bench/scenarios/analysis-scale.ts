// Near-duplicate analysis at scale, through the gateway, with the images-worker running: the lag
// after a 60,000-image IDX import (target: analysed within 1x the import's own duration after it
// ends, worker RSS < 300 MB), the leak report of 70,000 images read whole (target <= 5 s),
// GET /images/:id/similar at that size (p99 <= 20 ms), and what a second replica adds.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withClient } from '@berth/service-kit';
import type { BenchContext } from '../lib/scenario.ts';
import type { Running } from '../lib/stack.ts';
import { Samples } from '../lib/stats.ts';
import { augmented, FAMILIES, loadDigits, seeded, twin } from '../lib/twins.ts';
import { startWorker, waitForAnalysis } from './events.ts';
import { measureImport, rssMiB, writeIdx } from './images.ts';

/** Copies of train images planted among the test images, so the report has leaks to find. */
const PLANTED = 270;
/** Requests timed for GET /images/:id/similar. */
const SIMILAR_REQUESTS = 400;
/** Leak report page size, the route's largest. */
const PAGE = 500;

/** What the scale run measured. */
export interface ScaleFigures {
  train: number;
  test: number;
  importSeconds: number;
  importPerSecond: number;
  /** Seconds from the import's end until every image was analysed. */
  lagSeconds: number;
  lagRatio: number;
  analysedPerSecond: number;
  workerPeakRssMiB: number;
  /** The worker's V8 heap in use and its memory outside the heap at the end, MiB (its /metrics). */
  workerHeapMiB: number;
  workerExternalMiB: number;
  reportSeconds: number;
  reportPages: number;
  reportPairs: number;
  plantedFound: number;
  similarP50: number;
  similarP99: number;
  /** Backlog analysis rates with one and with two replicas, images/s. */
  oneReplica: number;
  twoReplicas: number;
}

async function sampleRss(worker: Running, until: Promise<unknown>): Promise<number> {
  let peak = 0;
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    const now = worker.child.pid ? await rssMiB(worker.child.pid) : Number.NaN;
    if (now > peak) peak = now;
    await sleep(100);
  }
  return peak;
}

/** 28x28 grey pixels of a copy of `pixels`, decoded back from whatever the family made of it. */
async function copyPixels(pixels: Uint8Array, family: (typeof FAMILIES)[number], random: () => number) {
  const { default: sharp } = await import('sharp');
  const { bytes } = await twin({ data: pixels, width: 28, height: 28, channels: 1 }, family, random);
  const { data } = await sharp(bytes)
    .resize(28, 28, { fit: 'fill' })
    .greyscale()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, 784);
}

/** Imports a data set of `count` strong variants of real digits with the workers stopped, then times their analysis by `replicas`. */
async function backlogRate(ctx: BenchContext, replicas: number, count: number, scratch: string): Promise<number> {
  const random = seeded(100 + replicas);
  const digits = loadDigits().flat();
  const pixels = new Uint8Array(count * 784);
  const labels = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    const digit = digits[(n * 7 + replicas) % digits.length] as (typeof digits)[number];
    pixels.set(augmented(digit, random), n * 784);
    labels[n] = digit.label;
  }
  const dataset = `bench-backlog-${replicas}`;
  await mkdir(join(scratch, dataset), { recursive: true });
  const files = await writeIdx(join(scratch, dataset), 'train', pixels, labels);
  await measureImport(ctx.urls.gateway as string, undefined, files, dataset, ctx.apiToken, ctx.signal);
  const env = ctx.serviceEnv('images');
  const started = performance.now();
  const workers = await Promise.all(Array.from({ length: replicas }, () => startWorker(ctx.stack, env)));
  try {
    await waitForAnalysis(env.DATABASE_URL as string, [dataset], 600_000, ctx.signal);
    return count / ((performance.now() - started) / 1000);
  } finally {
    for (const worker of workers) await ctx.stack.stopOne(worker);
  }
}

/** Runs the scale measurements: `train` train images and `test` test images in one data set. */
export async function measureScale(ctx: BenchContext, train: number, test: number): Promise<ScaleFigures> {
  const gateway = ctx.urls.gateway as string;
  const env = ctx.serviceEnv('images');
  const databaseUrl = env.DATABASE_URL as string;
  const scratch = await mkdtemp(join(tmpdir(), 'berth-bench-analysis-'));
  const random = seeded(23);
  const digits = loadDigits().flat();
  try {
    // train: strong variants of the real digits (look-alikes, no copies); test: the real digits
    // themselves and PLANTED copies of train images, decoded back to 28x28
    const trainPixels = new Uint8Array(train * 784);
    const trainLabels = new Uint8Array(train);
    for (let n = 0; n < train; n++) {
      const digit = digits[n % digits.length] as (typeof digits)[number];
      trainPixels.set(augmented(digit, random), n * 784);
      trainLabels[n] = digit.label;
    }
    const testPixels = new Uint8Array(test * 784);
    const testLabels = new Uint8Array(test);
    const planted = new Map<number, number>();
    for (let n = 0; n < test; n++) {
      if (n < test - PLANTED) {
        const digit = digits[n % digits.length] as (typeof digits)[number];
        testPixels.set(digit.pixels, n * 784);
        testLabels[n] = digit.label;
        continue;
      }
      const origin = Math.floor(random() * train);
      const family = FAMILIES[n % FAMILIES.length] as (typeof FAMILIES)[number];
      testPixels.set(await copyPixels(trainPixels.subarray(origin * 784, origin * 784 + 784), family, random), n * 784);
      testLabels[n] = trainLabels[origin] as number;
      planted.set(n, origin);
    }
    const trainFiles = await writeIdx(scratch, 'train', trainPixels, trainLabels);
    const testFiles = await writeIdx(scratch, 't10k', testPixels, testLabels);
    const dataset = 'bench-analysis';

    const worker = await startWorker(ctx.stack, env);
    let measured: { imported: Awaited<ReturnType<typeof measureImport>>; lag: number; heap: number; external: number };
    let workerPeak: number;
    try {
      const work = (async () => {
        const imported = await measureImport(gateway, undefined, trainFiles, dataset, ctx.apiToken, ctx.signal);
        ctx.log(`analysis: imported ${imported.images} train images in ${imported.seconds.toFixed(1)} s`);
        const lag = await waitForAnalysis(databaseUrl, [dataset], 900_000, ctx.signal);
        ctx.log(`analysis: every image analysed ${lag.toFixed(1)} s after the import ended`);
        await measureImport(gateway, undefined, testFiles, dataset, ctx.apiToken, ctx.signal);
        await waitForAnalysis(databaseUrl, [dataset], 900_000, ctx.signal);
        const metrics = await (await fetch(new URL('/metrics', worker.spec.readyUrl))).text();
        const mib = (name: string) =>
          Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(metrics)?.[1] ?? Number.NaN) / 2 ** 20;
        return {
          imported,
          lag,
          heap: mib('nodejs_heap_size_used_bytes'),
          external: mib('nodejs_external_memory_bytes'),
        };
      })();
      [workerPeak, measured] = await Promise.all([sampleRss(worker, work), work]);
    } finally {
      await ctx.stack.stopOne(worker);
    }
    const { imported: importFigures, lag, heap, external } = measured;

    // the whole leak report, page by page, through the gateway
    const reportStarted = performance.now();
    let cursor: string | null = null;
    let pages = 0;
    const pairs: Array<{ image: string; train: string }> = [];
    do {
      const url = `${gateway}/images/datasets/${dataset}/leaks?limit=${PAGE}${cursor ? `&cursor=${cursor}` : ''}`;
      const response = await fetch(url, { signal: ctx.signal });
      if (response.status !== 200)
        throw new Error(`The leak report answered ${response.status}: ${await response.text()}`);
      const page = (await response.json()) as {
        items: Array<{ image: { id: string }; train: { id: string } }>;
        nextCursor: string | null;
      };
      pages++;
      for (const item of page.items) pairs.push({ image: item.image.id, train: item.train.id });
      cursor = page.nextCursor;
    } while (cursor);
    const reportSeconds = (performance.now() - reportStarted) / 1000;

    // which planted copies the report found, by their records in the IDX files
    const names = await withClient(databaseUrl, async (client) => {
      const { rows } = await client.query<{ id: string; original_name: string }>(
        'SELECT id, original_name FROM images WHERE dataset = $1',
        [dataset],
      );
      return new Map(rows.map((row) => [row.original_name, row.id]));
    });
    const found = new Set(pairs.map((pair) => `${pair.image}:${pair.train}`));
    let plantedFound = 0;
    for (const [record, origin] of planted) {
      const image = names.get(`t10k-images-idx3-ubyte#${record}`);
      const trainImage = names.get(`train-images-idx3-ubyte#${origin}`);
      if (image && trainImage && found.has(`${image}:${trainImage}`)) plantedFound++;
    }

    // similar, one request at a time, for images drawn at random
    const ids = [...names.values()];
    const similar = new Samples();
    for (let i = 0; i < SIMILAR_REQUESTS; i++) {
      const id = ids[Math.floor(random() * ids.length)] as string;
      const started = performance.now();
      const response = await fetch(`${gateway}/images/${id}/similar`, { signal: ctx.signal });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`similar answered ${response.status}`);
      similar.push(performance.now() - started);
    }

    const latencies = similar.summarize();
    const backlog = Math.max(1000, Math.round(train / 3));
    const oneReplica = await backlogRate(ctx, 1, backlog, scratch);
    const twoReplicas = await backlogRate(ctx, 2, backlog, scratch);
    return {
      train,
      test,
      importSeconds: importFigures.seconds,
      importPerSecond: importFigures.imagesPerSecond,
      lagSeconds: lag,
      lagRatio: lag / importFigures.seconds,
      analysedPerSecond: train / (importFigures.seconds + lag),
      workerPeakRssMiB: workerPeak,
      workerHeapMiB: heap,
      workerExternalMiB: external,
      reportSeconds,
      reportPages: pages,
      reportPairs: pairs.length,
      plantedFound: plantedFound / PLANTED,
      similarP50: latencies.p50,
      similarP99: latencies.p99,
      oneReplica,
      twoReplicas,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
