import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from './services.ts';

/** The machine a run measured on, so figures from different machines are not compared blindly. */
export function machine() {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${process.platform} ${release()}`,
    loadAverage: loadavg().map((value) => Math.round(value * 100) / 100),
  };
}

/** Share of all cores busy over the next `ms`: other work on the machine skews every figure. */
export async function cpuBusy(ms = 1000): Promise<number> {
  const totals = () =>
    cpus().reduce(
      (sum, cpu) => {
        const { user, nice, sys, irq, idle } = cpu.times;
        return { busy: sum.busy + user + nice + sys + irq, all: sum.all + user + nice + sys + irq + idle };
      },
      { busy: 0, all: 0 },
    );
  const before = totals();
  await sleep(ms);
  const after = totals();
  const all = after.all - before.all;
  return all > 0 ? (after.busy - before.busy) / all : 0;
}

/** The commit measured, marked dirty when the working tree has changes. */
export function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    return dirty.trim() ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

/** Writes bench/results/<YYYY-MM-DD>.json (UTC date; a later full run the same day replaces it), or <date>-<scenarios>.json for a partial run, and returns its path. */
export async function writeResults(startedAt: Date, data: unknown, only: string[] = []): Promise<string> {
  const dir = `${ROOT}bench/results`;
  await mkdir(dir, { recursive: true });
  // a run of some scenarios gets a file of its own, so it never replaces the day's full run
  const part = only.length > 0 ? `-${[...only].sort().join('-')}` : '';
  const file = `${dir}/${startedAt.toISOString().slice(0, 10)}${part}.json`;
  await writeFile(file, `${JSON.stringify(data, roundNumbers, 2)}\n`);
  return file;
}

/** Keeps three decimals: more is noise and bloats the file. */
function roundNumbers(_key: string, value: unknown): unknown {
  if (typeof value !== 'number' || Number.isInteger(value)) return value;
  return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : null;
}
