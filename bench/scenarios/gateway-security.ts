// The gateway-security target (issue 7): with auth, rate limiting (a limit no run reaches) and the
// security headers on, GET / through the gateway keeps at least 90 % of the throughput it has with
// all three off, in the same run. Two gateways of the scenario's own, identical but for those
// switches, front the same counter and are loaded in alternating order, a fresh pair of processes
// for each pair of runs; each one's CPU per request is read from /proc/<pid>/stat, which other work
// on the machine does not skew as much as it skews req/s.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { closedLoop, type LoadResult } from '../lib/load.ts';
import { describeRun } from '../lib/report.ts';
import { type BenchContext, check, type FigureRow, type Scenario, type ScenarioReport } from '../lib/scenario.ts';
import { startService } from '../lib/services.ts';
import { median } from '../lib/stats.ts';

/** Lets sockets and garbage from the previous run settle before the next one. */
const PAUSE_MS = 500;

type Key = 'off' | 'on';

const LABELS: Record<Key, string> = { off: 'gateway, protections off', on: 'gateway, protections on' };

interface Target {
  key: Key;
  label: string;
  url: string;
  pid: number;
}

/** Clock ticks per second for /proc/<pid>/stat; 100 on every Linux berth runs on. */
function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** User plus system CPU a process has used so far, in microseconds. */
async function cpuMicros(pid: number, ticksPerSecond: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // the fields after the command name, which may itself hold spaces and parentheses
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / ticksPerSecond;
}

/** The switches the target compares: all three protections off, or on as deployed. */
function protections(ctx: BenchContext, on: boolean, token: string): Record<string, string> {
  if (!on) return { AUTH_ENABLED: 'false', RATE_LIMIT_ENABLED: 'false', SECURITY_HEADERS_ENABLED: 'false' };
  return {
    AUTH_ENABLED: 'true',
    API_TOKENS: token,
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_MAX: '1000000000',
    REDIS_URL: ctx.options.redisUrl,
    // under the run's prefix, so the counts are removed with the rest of the run's keys
    RATE_LIMIT_KEY_PREFIX: `${ctx.keyPrefix}gateway-security:`,
    SECURITY_HEADERS_ENABLED: 'true',
  };
}

async function startTarget(ctx: BenchContext, key: Key, token: string): Promise<Target> {
  const url = await startService(ctx.stack, 'gateway', {
    COUNTER_URL: ctx.urls.counter ?? '',
    JOKES_URL: '',
    IMAGES_URL: '',
    ...protections(ctx, key === 'on', token),
  });
  const port = new URL(url).port;
  const pid = ctx.stack.running.find((proc) => proc.spec.env.PORT === port)?.child.pid;
  if (!pid) throw new Error(`No process found for the gateway at ${url}`);
  const label = LABELS[key];
  ctx.log(`${label} ready at ${url}`);
  return { key, label, url, pid };
}

/** Refuses to compare unless the "on" gateway really limits, checks tokens and sends the headers, and "off" does none. */
async function verify(on: Target, off: Target): Promise<void> {
  const [onGet, offGet] = await Promise.all([fetch(`${on.url}/`), fetch(`${off.url}/`)]);
  await Promise.all([onGet.arrayBuffer(), offGet.arrayBuffer()]);
  const onWrite = await fetch(`${on.url}/counter/bench`, { method: 'POST' });
  await onWrite.arrayBuffer();
  const problems = [
    onGet.status !== 200 && `GET / answered ${onGet.status} with protections on`,
    !onGet.headers.get('ratelimit') && 'no RateLimit header with protections on',
    !onGet.headers.get('x-content-type-options') && 'no security headers with protections on',
    onWrite.status !== 401 && `a write without a token answered ${onWrite.status} with protections on`,
    offGet.status !== 200 && `GET / answered ${offGet.status} with protections off`,
    (offGet.headers.get('ratelimit') || offGet.headers.get('x-content-type-options')) &&
      'protection headers with protections off',
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`The gateways are not set up for the comparison: ${problems.join('; ')}`);
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

/** GET / through two gateways, protections off and on, in alternating pairs of runs. */
export const gatewaySecurityScenario: Scenario = {
  name: 'gateway-security',
  summary: 'GET / through the gateway with auth, rate limiting and security headers on, against all three off',
  needs: ['counter'],

  async run(ctx: BenchContext): Promise<ScenarioReport> {
    const { options, signal, log } = ctx;
    const token = randomBytes(32).toString('hex');
    const ticks = clockTicks();
    const connections = options.connections;
    // twice as many pairs, half as long: runs moments apart see the same machine, so a ratio is
    // less at the mercy of other work starting or stopping between its two halves
    const pairs = options.rounds * 2;
    const seconds = Math.max(2, Math.round(options.seconds / 2));
    const runs: Record<Key, LoadResult[]> = { off: [], on: [] };
    const cpu: Record<Key, number[]> = { off: [], on: [] };
    for (let pair = 0; pair < pairs; pair++) {
      // a fresh pair of processes each time: two runs of the same gateway code differ by several
      // microseconds per request from process to process, as much as the protections cost
      const off = await startTarget(ctx, 'off', token);
      const on = await startTarget(ctx, 'on', token);
      if (pair === 0) await verify(on, off);
      const order = pair % 2 === 0 ? [off, on] : [on, off];
      if (options.warmupSeconds > 0) {
        for (const target of order) {
          const result = await closedLoop({
            url: `${target.url}/`,
            connections,
            seconds: options.warmupSeconds,
            signal,
          });
          log(describeRun(`warm-up ${pair + 1}/${pairs}  ${target.label}`, result));
          await sleep(PAUSE_MS);
        }
      }
      for (const target of order) {
        const before = await cpuMicros(target.pid, ticks);
        const result = await closedLoop({ url: `${target.url}/`, connections, seconds, signal });
        const used = (await cpuMicros(target.pid, ticks)) - before;
        const answered = result.ok + result.non2xx;
        runs[target.key].push(result);
        cpu[target.key].push(answered > 0 ? used / answered : Number.NaN);
        log(
          `${describeRun(`pair ${pair + 1}/${pairs}  ${target.label}`, result)}  gateway CPU ${(used / answered).toFixed(1)} µs/req`,
        );
        await sleep(PAUSE_MS);
      }
    }

    const ratios = runs.on.map((r, i) => r.rps / (runs.off[i]?.rps ?? Number.NaN));
    const summary = {
      onOverOff: median(ratios),
      cpuOffMicros: median(cpu.off),
      cpuOnMicros: median(cpu.on),
      cpuAddedMicros: median(cpu.on.map((c, i) => c - (cpu.off[i] ?? Number.NaN))),
    };
    const all = [...runs.off, ...runs.on];
    const runsText = `median of ${pairs} alternating pairs of fresh processes, ${seconds} s each`;
    return {
      sections: [
        {
          title: `GET / through the gateway at ${connections} connections (${runsText})`,
          rows: [row(LABELS.off, runs.off), row(LABELS.on, runs.on)],
          footer:
            `on / off: ${summary.onOverOff.toFixed(2)} ×; gateway CPU per request: off ${summary.cpuOffMicros.toFixed(1)} µs, ` +
            `on ${summary.cpuOnMicros.toFixed(1)} µs (${summary.cpuAddedMicros >= 0 ? '+' : ''}${summary.cpuAddedMicros.toFixed(1)} µs)`,
        },
      ],
      checks: [check('protections on / off, GET / throughput', summary.onOverOff, '>=', 0.9, 'x', all)],
      notes: [],
      clean: all.every((r) => r.non2xx === 0 && r.errors === 0),
      data: {
        switches: { off: protections(ctx, false, ''), on: { ...protections(ctx, true, ''), API_TOKENS: '(random)' } },
        closedLoop: runs,
        cpuMicrosPerRequest: cpu,
        perPair: { onOverOff: ratios },
        summary,
      },
    };
  },
};
