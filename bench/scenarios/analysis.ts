// Near-duplicate quality (issue targets: recall >= 0.9 at precision >= 0.99 for the leak report and
// similar at their defaults, recall >= 0.8 for every family of copies), on real MNIST digits with
// copies made by bench/lib/twins.ts; today's method against dHash <= 6 bits alone, in one run.
// Part of npm run bench (alone: npm run bench -- --only analysis); BENCH_ANALYSIS_TRAIN sets the size.

import { CandidateIndex, indexEntry } from '../../services/images/src/analysis/candidates.ts';
import { dhash, hammingDistance } from '../../services/images/src/analysis/dhash.ts';
import { type Signature, signatureOf } from '../../services/images/src/analysis/signature.ts';
import { DEFAULT_THRESHOLD, finalistScores, PAIR_FLOOR } from '../../services/images/src/analysis/verify.ts';
import { type Check, check, type Scenario, type ScenarioReport } from '../lib/scenario.ts';
import { colourDigit, digitRaw, FAMILIES, loadDigits, png, type Raw, seeded, twin } from '../lib/twins.ts';
import { measureScale } from './analysis-scale.ts';

const MAX_PIXELS = 40_000_000;
/** Images the worker takes together by default (WORKER_BATCH). */
const WORKER_BATCH = 256;
/** The dHash distance the report used before, as the baseline. */
const BASELINE_DISTANCE = 6;

interface Picture {
  id: number;
  label: number;
  /** The train picture this one is a copy of. */
  origin?: number;
  family?: string;
  raw?: Raw;
  signature: Signature;
  hash: bigint;
}

async function picture(id: number, label: number, bytes: Buffer, extra: Partial<Picture> = {}): Promise<Picture> {
  const [signature, hash] = await Promise.all([signatureOf(bytes, MAX_PIXELS), dhash(bytes, MAX_PIXELS)]);
  return { id, label, signature, hash, ...extra };
}

/** Recall and precision of a set of reported (test, train) pairs. */
function score(pairs: Array<[Picture, Picture]>, copies: Picture[]) {
  const right = pairs.filter(([t, r]) => t.origin === r.id);
  const found = new Set(right.map(([t]) => t.id));
  const perFamily = Object.fromEntries(
    FAMILIES.map((family) => {
      const all = copies.filter((c) => c.family === family);
      return [family, all.filter((c) => found.has(c.id)).length / all.length];
    }),
  );
  return { recall: found.size / copies.length, precision: pairs.length ? right.length / pairs.length : 1, perFamily };
}

export const analysisScenario: Scenario = {
  name: 'analysis',
  summary:
    'near-duplicates: recall and precision on real digits and their copies against dHash alone; analysis lag, leak report and similar at 70,000 images',
  needs: ['images'],
  async run(ctx): Promise<ScenarioReport> {
    const perClass = Math.max(10, Math.round(Number(process.env.BENCH_ANALYSIS_TRAIN ?? 500) / 10));
    const perFamily = Math.max(4, Math.round(perClass / 2));
    const random = seeded(19);
    const digits = loadDigits();
    const train: Picture[] = [];
    const test: Picture[] = [];
    let id = 0;
    const started = performance.now();
    for (let label = 0; label < 10; label++) {
      for (let i = 0; i < 2 * perClass; i++) {
        const digit = digits[label]?.[i];
        if (!digit) throw new Error(`The mnist package has fewer than ${2 * perClass} digits of class ${label}`);
        // one in four a colour picture: the digit coloured on a patterned gradient
        const raw = i % 4 === 3 ? colourDigit(digit, random) : digitRaw(digit);
        const made = await picture(id++, label, await png(raw), { raw });
        (i < perClass ? train : test).push(made);
      }
    }
    for (const family of FAMILIES) {
      for (let k = 0; k < perFamily; k++) {
        const origin = train[Math.floor(random() * train.length)] as Picture;
        const { bytes } = await twin(origin.raw as Raw, family, random);
        test.push(await picture(id++, origin.label, bytes, { origin: origin.id, family }));
      }
    }
    const signing = (performance.now() - started) / (train.length + test.length);
    const copies = test.filter((t) => t.origin !== undefined);
    ctx.log(
      `analysis: ${train.length} train, ${test.length - copies.length} other test digits, ${copies.length} copies`,
    );

    // as the images-worker pairs them: in batches, in an order of arrival, each batch added to the
    // data set's index first, then each image's finalists verified; a pair is found from whichever
    // side comes later
    const everyone = [...train, ...test];
    for (let i = everyone.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [everyone[i], everyone[j]] = [everyone[j] as Picture, everyone[i] as Picture];
    }
    const byId = new Map(everyone.map((p) => [String(p.id), p]));
    const index = new CandidateIndex();
    const found = new Map<string, number>();
    let verified = 0;
    const pairStarted = performance.now();
    for (let at = 0; at < everyone.length; at += WORKER_BATCH) {
      const batch = everyone
        .slice(at, at + WORKER_BATCH)
        .map((p) => ({ p, entry: indexEntry(String(p.id), p.signature) }));
      for (const { entry } of batch) index.add(entry);
      for (const { p, entry } of batch) {
        const others = index.finalists(entry).map((finalist) => byId.get(finalist.id) as Picture);
        verified += others.length;
        const scores = finalistScores(
          p.signature,
          others.map((other) => other.signature),
        );
        others.forEach((other, i) => {
          const value = scores[i] as number;
          if (value < PAIR_FLOOR) return;
          const key = [p.id, other.id].sort((a, b) => a - b).join(':');
          found.set(key, Math.max(found.get(key) ?? 0, value));
        });
      }
    }
    const pairMs = (performance.now() - pairStarted) / everyone.length;
    const trainIds = new Set(train.map((p) => p.id));
    /** The leaks at a threshold: pairs of one test image and one train image. */
    const leaksAt = (threshold: number) => {
      const pairs: Array<[Picture, Picture]> = [];
      for (const [key, value] of found) {
        if (value < threshold) continue;
        const [a, b] = key.split(':').map((id) => byId.get(id) as Picture) as [Picture, Picture];
        if (trainIds.has(a.id) !== trainIds.has(b.id)) pairs.push(trainIds.has(a.id) ? [b, a] : [a, b]);
      }
      return pairs;
    };
    const reported = leaksAt(DEFAULT_THRESHOLD);
    const sweep = [0.95, 0.96, 0.965, 0.97, 0.975, 0.98].map((threshold) => ({
      threshold,
      ...score(leaksAt(threshold), copies),
    }));
    const method = score(reported, copies);
    const baselinePairs: Array<[Picture, Picture]> = [];
    for (const t of test) {
      for (const r of train) if (hammingDistance(t.hash, r.hash) <= BASELINE_DISTANCE) baselinePairs.push([t, r]);
    }
    const baseline = score(baselinePairs, copies);

    const checks: Check[] = [
      check('near-duplicates: recall at the default threshold', method.recall, '>=', 0.9, 'x', []),
      check('near-duplicates: precision at the default threshold', method.precision, '>=', 0.99, 'x', []),
      ...FAMILIES.map((family) =>
        check(`near-duplicates: recall of ${family} copies`, method.perFamily[family] as number, '>=', 0.8, 'x', []),
      ),
    ];
    const pct = (x: number) => x.toFixed(3);
    const notes = [
      `method (threshold ${DEFAULT_THRESHOLD}): recall ${pct(method.recall)}, precision ${pct(method.precision)}; ` +
        `dHash <= ${BASELINE_DISTANCE} alone: recall ${pct(baseline.recall)}, precision ${pct(baseline.precision)}`,
      `per family (method / dHash): ${FAMILIES.map((f) => `${f} ${pct(method.perFamily[f] as number)} / ${pct(baseline.perFamily[f] as number)}`).join(', ')}`,
      `other thresholds (recall / precision): ${sweep.map((t) => `${t.threshold} ${pct(t.recall)} / ${pct(t.precision)}`).join(', ')}`,
      `cost: ${signing.toFixed(2)} ms per image to sign (with the copy's encode), ${pairMs.toFixed(2)} ms per image to pair ` +
        `(${(verified / everyone.length).toFixed(1)} finalists verified per image)`,
    ];
    for (const line of notes) ctx.log(`analysis: ${line}`);

    const trainAtScale = Number(process.env.BENCH_ANALYSIS_IMAGES ?? 60_000);
    // BENCH_ANALYSIS_IMAGES=0 measures the quality alone
    const scale = trainAtScale > 0 ? await measureScale(ctx, trainAtScale, Math.round(trainAtScale / 6)) : undefined;
    if (scale) {
      const f1 = (x: number) => x.toFixed(1);
      notes.push(
        `at scale: import of ${scale.train} in ${f1(scale.importSeconds)} s (${scale.importPerSecond.toFixed(0)}/s); every image analysed ` +
          `${f1(scale.lagSeconds)} s after it ended (${scale.lagRatio.toFixed(2)} x the import), ${scale.analysedPerSecond.toFixed(0)} images/s ` +
          `from the import's start; worker peak RSS ${scale.workerPeakRssMiB.toFixed(0)} MiB (at the end ` +
          `${scale.workerHeapMiB.toFixed(0)} MiB of V8 heap in use, ${scale.workerExternalMiB.toFixed(0)} MiB outside it)`,
        `leak report of ${scale.train + scale.test} images: ${scale.reportPairs} pairs in ${scale.reportPages} pages, read in ` +
          `${scale.reportSeconds.toFixed(2)} s; planted copies found ${pct(scale.plantedFound)}; similar p50 ${scale.similarP50.toFixed(1)} ms, ` +
          `p99 ${scale.similarP99.toFixed(1)} ms`,
        `a backlog of ${Math.round(scale.train / 3)}: ${scale.oneReplica.toFixed(0)} images/s with one worker, ${scale.twoReplicas.toFixed(0)} with two ` +
          `(${(scale.twoReplicas / scale.oneReplica).toFixed(2)} x)`,
      );
      for (const line of notes.slice(-3)) ctx.log(`analysis: ${line}`);
    }
    const skipped = Number.NaN;
    checks.push(
      check('analysis lag after the import / the import', scale?.lagRatio ?? skipped, '<=', 1, 'x', []),
      check(
        'images-worker peak RSS ÷ 300 MB',
        ((scale?.workerPeakRssMiB ?? skipped) * 1.048576) / 300,
        '<=',
        1,
        'x',
        [],
      ),
      check('leak report of 70,000 read whole (ms)', (scale?.reportSeconds ?? skipped) * 1000, '<=', 5000, 'ms', []),
      check('similar p99 at 70,000 images', scale?.similarP99 ?? skipped, '<=', 20, 'ms', []),
    );
    return {
      sections: [],
      checks,
      notes,
      clean: true,
      data: {
        scale,
        train: train.length,
        test: test.length,
        copies: copies.length,
        threshold: DEFAULT_THRESHOLD,
        method,
        baseline: { distance: BASELINE_DISTANCE, ...baseline },
        sweep: sweep.map(({ threshold, recall, precision }) => ({ threshold, recall, precision })),
        signMsPerImage: signing,
        pairMsPerImage: pairMs,
        finalistsPerImage: verified / everyone.length,
      },
    };
  },
};
