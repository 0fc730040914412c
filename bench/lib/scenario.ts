import type { LoadResult } from './load.ts';
import type { BenchOptions } from './options.ts';
import type { StackUrls, UpstreamName } from './services.ts';
import type { Stack } from './stack.ts';

/** What a scenario gets: the settings, the running stack and where to put its own state. */
export interface BenchContext {
  options: BenchOptions;
  stack: Stack;
  /** Base URLs of the started services and the gateway. */
  urls: StackUrls;
  /** The private database each started service that has one was given; dropped at the end. */
  databaseUrls: Partial<Record<UpstreamName, string>>;
  /** Redis key prefix of this run; removed at the end. Scenarios add their own suffix. */
  keyPrefix: string;
  /** A token the gateway accepts for writes (its API_TOKENS). */
  apiToken: string;
  /** The env a started service was given beyond PORT, HOST and LOG_LEVEL (its database, volume, stream). */
  serviceEnv(name: UpstreamName): Record<string, string>;
  /** Aborted on Ctrl-C; pass it to every load run. */
  signal: AbortSignal;
  /** Prints a progress line. */
  log: (line: string) => void;
}

/** One line of a figures table. */
export interface FigureRow {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  /** Non-2xx answers plus connection errors over every run behind the row. */
  failures: number;
}

/** A titled figures table. */
export interface Section {
  title: string;
  rows: FigureRow[];
  /** A last line under the table, such as what the gateway adds. */
  footer?: string;
}

/** met/missed against the target; invalid when a run behind it failed requests; skipped when not measured. */
export type CheckStatus = 'met' | 'missed' | 'invalid' | 'skipped';

/** One target from the issue and how this run did against it. */
export interface Check {
  name: string;
  value: number;
  unit: 'x' | 'ms';
  op: '>=' | '<=';
  target: number;
  status: CheckStatus;
}

/** What a scenario hands back: tables to print, targets checked, and every figure for the JSON file. */
export interface ScenarioReport {
  sections: Section[];
  checks: Check[];
  notes: string[];
  /** False when any run saw failed requests, so its figures are not to be trusted. */
  clean: boolean;
  data: Record<string, unknown>;
}

/** A benchmark scenario; run.ts starts the services it needs behind the gateway, then calls run. */
export interface Scenario {
  name: string;
  summary: string;
  needs: UpstreamName[];
  run(ctx: BenchContext): Promise<ScenarioReport>;
}

/** Compares value with a target; a run with failed requests makes the check invalid, a missing value skipped. */
export function check(
  name: string,
  value: number,
  op: Check['op'],
  target: number,
  unit: Check['unit'],
  runs: LoadResult[],
): Check {
  let status: CheckStatus;
  if (Number.isNaN(value)) status = 'skipped';
  else if (runs.some((run) => run.non2xx > 0 || run.errors > 0)) status = 'invalid';
  else status = (op === '>=' ? value >= target : value <= target) ? 'met' : 'missed';
  return { name, value, unit, op, target, status };
}
