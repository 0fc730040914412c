import { setTimeout as sleep } from 'node:timers/promises';
import { BASELINE_INSTALL, findBaselinePython, startBaseline } from '../lib/baseline.ts';
import { closedLoop, type LoadResult } from '../lib/load.ts';
import { fixedRate } from '../lib/paced.ts';
import { expectAnswer } from '../lib/probe.ts';
import { describeRun, formatMs } from '../lib/report.ts';
import { type BenchContext, check, type FigureRow, type Scenario, type ScenarioReport } from '../lib/scenario.ts';
import { median } from '../lib/stats.ts';

/** The Docker sample's page, whatever the count. */
const SAMPLE_BODY = /^Hello World! I have been seen \d+ times\.\n$/;

/** Lets sockets and garbage from the previous run settle before the next one. */
const PAUSE_MS = 500;

type TargetKey = 'direct' | 'gateway' | 'baseline';

interface Target {
  key: TargetKey;
  label: string;
  url: string;
  /** Set from the probe: gunicorn's sync workers close the connection after each answer. */
  closesConnections?: boolean;
}

/** Per-round figure pairs, so ratios compare runs made moments apart. */
function perRound(a: LoadResult[], b: LoadResult[], figure: (x: LoadResult, y: LoadResult) => number): number[] {
  return a.map((x, i) => (b[i] ? figure(x, b[i]) : Number.NaN));
}

function row(label: string, runs: LoadResult[]): FigureRow {
  return {
    label,
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.latency.p50)),
    p99: median(runs.map((r) => r.latency.p99)),
    failures: runs.reduce((sum, r) => sum + r.non2xx + r.errors, 0),
  };
}

/** Starts the Flask baseline when its packages are there; otherwise says how to get them. */
async function baselineTarget(ctx: BenchContext, notes: string[]): Promise<Target | null> {
  const python = await findBaselinePython();
  if (!python) {
    const note = `Baseline skipped: Flask, redis-py or gunicorn is missing (install with: ${BASELINE_INSTALL})`;
    ctx.log(note);
    notes.push(note);
    return null;
  }
  const url = await startBaseline(ctx.stack, {
    python,
    redisUrl: ctx.options.redisUrl,
    keyPrefix: `${ctx.keyPrefix}baseline:`,
  });
  ctx.log(`baseline ready at ${url} (Flask under gunicorn, 2 sync workers, ${python})`);
  return { key: 'baseline', label: 'Flask baseline', url: `${url}/` };
}

/**
 * GET / (the Docker sample) three ways in one run: on the counter directly, through the gateway, and on
 * the Flask app it replaces. Closed-loop runs at N connections measure capacity; fixed-rate runs at
 * BENCH_RATE measure what the gateway adds to latency when neither side is saturated. Each round runs
 * every target once, in alternating order, and the report takes the median over rounds.
 */
export const counterScenario: Scenario = {
  name: 'counter',
  summary: 'GET / direct on the counter, through the gateway, and on the Flask sample app',
  needs: ['counter'],

  async run(ctx: BenchContext): Promise<ScenarioReport> {
    const { options, signal, log } = ctx;
    const notes: string[] = [];
    const targets: Target[] = [
      { key: 'direct', label: 'counter direct', url: `${ctx.urls.counter}/` },
      { key: 'gateway', label: 'gateway -> counter', url: `${ctx.urls.gateway}/` },
    ];
    const baseline = await baselineTarget(ctx, notes);
    if (baseline) targets.push(baseline);

    for (const target of targets) {
      const answer = await expectAnswer(target.url, SAMPLE_BODY);
      target.closesConnections = !answer.keepAlive;
    }

    const connections = options.connections;
    if (options.warmupSeconds > 0) {
      for (const target of targets) {
        const result = await closedLoop({
          url: target.url,
          connections,
          seconds: options.warmupSeconds,
          closesConnections: target.closesConnections,
          signal,
        });
        log(describeRun(`warm-up  ${target.label}`, result));
        await sleep(PAUSE_MS);
      }
    }

    const closed: Record<TargetKey, LoadResult[]> = { direct: [], gateway: [], baseline: [] };
    const fixed: Record<TargetKey, LoadResult[]> = { direct: [], gateway: [], baseline: [] };
    const pair = targets.filter((t) => t.key !== 'baseline');
    for (let round = 0; round < options.rounds; round++) {
      const tag = `round ${round + 1}/${options.rounds}`;
      // alternating the order keeps drift on a shared machine from always favouring one side
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        const result = await closedLoop({
          url: target.url,
          connections,
          seconds: options.seconds,
          closesConnections: target.closesConnections,
          signal,
        });
        closed[target.key].push(result);
        log(describeRun(`${tag}  ${target.label}`, result));
        await sleep(PAUSE_MS);
      }
      for (const target of round % 2 === 0 ? pair : [...pair].reverse()) {
        const result = await fixedRate({
          url: target.url,
          rate: options.rate,
          seconds: options.seconds,
          connections,
          signal,
        });
        fixed[target.key].push(result);
        log(describeRun(`${tag}  ${target.label} @${options.rate}/s`, result));
        await sleep(PAUSE_MS);
      }
    }

    const { direct, gateway, baseline: flask } = closed;
    const { direct: fixedDirect, gateway: fixedGateway } = fixed;
    const ratios = {
      gatewayOverDirect: perRound(gateway, direct, (g, d) => g.rps / d.rps),
      directOverBaseline: perRound(direct, flask, (d, b) => d.rps / b.rps),
      gatewayOverBaseline: perRound(gateway, flask, (g, b) => g.rps / b.rps),
    };
    const added = {
      p50: perRound(fixedGateway, fixedDirect, (g, d) => g.latency.p50 - d.latency.p50),
      p99: perRound(fixedGateway, fixedDirect, (g, d) => g.latency.p99 - d.latency.p99),
    };
    const summary = {
      gatewayOverDirect: median(ratios.gatewayOverDirect),
      directOverBaseline: median(ratios.directOverBaseline),
      gatewayOverBaseline: median(ratios.gatewayOverBaseline),
      gatewayP99: median(gateway.map((r) => r.latency.p99)),
      addedP50: median(added.p50),
      addedP99: median(added.p99),
    };

    const at = `${options.connections} connections`;
    const rate = `${options.rate.toLocaleString('en-US')} req/s`;
    const checks = [
      check('gateway / direct throughput', summary.gatewayOverDirect, '>=', 0.35, 'x', [...gateway, ...direct]),
      check(`gateway p99 at ${at}`, summary.gatewayP99, '<=', 20, 'ms', gateway),
      check(`gateway adds at p50, ${rate}`, summary.addedP50, '<=', 1, 'ms', [...fixedGateway, ...fixedDirect]),
      check(`gateway adds at p99, ${rate}`, summary.addedP99, '<=', 5, 'ms', [...fixedGateway, ...fixedDirect]),
      check('counter direct / baseline', summary.directOverBaseline, '>=', 5, 'x', [...direct, ...flask]),
      check('gateway / baseline', summary.gatewayOverBaseline, '>=', 1.5, 'x', [...gateway, ...flask]),
    ];

    for (const result of [...fixedDirect, ...fixedGateway]) {
      if (result.rps < options.rate * 0.95) {
        notes.push(
          `A fixed-rate run reached only ${Math.round(result.rps)} of ${options.rate} req/s at "${result.url}"`,
        );
        break;
      }
    }
    const all = [...direct, ...gateway, ...flask, ...fixedDirect, ...fixedGateway];
    const rounds =
      options.rounds > 1 ? `median of ${options.rounds} rounds, ${options.seconds} s each` : `${options.seconds} s`;
    return {
      sections: [
        {
          title: `GET / at ${at} (${rounds})`,
          rows: [
            row('counter direct', direct),
            row('gateway -> counter', gateway),
            ...(baseline ? [row(baseline.label, flask)] : []),
          ],
          footer: `gateway / direct: ${summary.gatewayOverDirect.toFixed(2)} ×`,
        },
        {
          title: `GET / at a fixed ${rate} over up to ${connections} connections (${rounds})`,
          rows: [row('counter direct', fixedDirect), row('gateway -> counter', fixedGateway)],
          footer: `added by the gateway: p50 ${formatMs(summary.addedP50, true)} ms, p99 ${formatMs(summary.addedP99, true)} ms`,
        },
      ],
      checks,
      notes,
      clean: all.every((r) => r.non2xx === 0 && r.errors === 0),
      data: {
        targets: Object.fromEntries(
          targets.map((t) => [t.key, { label: t.label, closesConnections: t.closesConnections }]),
        ),
        closedLoop: closed,
        fixedRate: { direct: fixedDirect, gateway: fixedGateway },
        perRound: { ...ratios, addedP50: added.p50, addedP99: added.p99 },
        summary,
      },
    };
  },
};
