// Near-duplicate quality (issue targets: recall >= 0.9 at precision >= 0.99 for the leak report and
// similar at their defaults, recall >= 0.8 for every family of copies), on real MNIST digits with
// copies made by bench/lib/twins.ts; today's method against dHash <= 6 bits alone, in one run.
// Part of npm run bench (alone: npm run bench -- --only analysis); BENCH_ANALYSIS_TRAIN sets the size.
import { dhash, hammingDistance } from '../../services/images/src/analysis/dhash.ts';
import { type Signature, signatureKeys, signatureOf } from '../../services/images/src/analysis/signature.ts';
import { DEFAULT_THRESHOLD, verificationScore } from '../../services/images/src/analysis/verify.ts';
import { type Check, check, type Scenario, type ScenarioReport } from '../lib/scenario.ts';
import { colourDigit, digitRaw, FAMILIES, loadDigits, png, type Raw, seeded, twin } from '../lib/twins.ts';

const MAX_PIXELS = 40_000_000;
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
  summary: 'near-duplicate recall and precision on real digits and their copies, against dHash alone',
  needs: [],
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

    // candidates by shared keys, as image_keys finds them; then verification at the default threshold
    const byKey = new Map<bigint, Picture[]>();
    for (const r of train) {
      for (const key of signatureKeys(r.signature)) byKey.set(key, [...(byKey.get(key) ?? []), r]);
    }
    let candidateCount = 0;
    let verifyMs = 0;
    let candidatesWithOrigin = 0;
    const reported: Array<[Picture, Picture]> = [];
    for (const t of test) {
      const candidates = new Set(signatureKeys(t.signature).flatMap((key) => byKey.get(key) ?? []));
      candidateCount += candidates.size;
      if (t.origin !== undefined && [...candidates].some((r) => r.id === t.origin)) candidatesWithOrigin++;
      const before = performance.now();
      for (const r of candidates) {
        if (verificationScore(t.signature, r.signature) >= DEFAULT_THRESHOLD) reported.push([t, r]);
      }
      verifyMs += performance.now() - before;
    }
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
      `candidates: ${(candidateCount / test.length).toFixed(1)} per test image of ${train.length} train ` +
        `(${pct(candidateCount / test.length / train.length)}), holding the original for ${pct(candidatesWithOrigin / copies.length)} of copies`,
      `cost: ${signing.toFixed(2)} ms per image to sign (with the copy's encode), ${((verifyMs * 1000) / Math.max(1, candidateCount)).toFixed(0)} us per verified candidate`,
    ];
    for (const line of notes) ctx.log(`analysis: ${line}`);
    return {
      sections: [],
      checks,
      notes,
      clean: true,
      data: {
        train: train.length,
        test: test.length,
        copies: copies.length,
        threshold: DEFAULT_THRESHOLD,
        method,
        baseline: { distance: BASELINE_DISTANCE, ...baseline },
        candidatesPerImage: candidateCount / test.length,
        candidateRecall: candidatesWithOrigin / copies.length,
        signMsPerImage: signing,
        verifyUsPerCandidate: (verifyMs * 1000) / Math.max(1, candidateCount),
      },
    };
  },
};
