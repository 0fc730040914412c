import type { FastifyBaseLogger } from 'fastify';
import type pg from 'pg';
import type { ImportRunner } from './imports/runner.ts';
import type { Inbox } from './inbox/inbox.ts';
import type { Store } from './storage/store.ts';
import { sweep } from './storage/sweep.ts';

/** One recurring task: a name for the log and the work. */
export interface Task {
  name: string;
  everyMs: number;
  /** How long after start-up the first run comes; 0 by default. */
  firstAfterMs?: number;
  run(): Promise<unknown>;
}

/**
 * Runs recurring tasks on timers inside the service: each one first right after start-up, then
 * every `everyMs` after the previous run ended (never two runs of one task at once). A failing
 * run is logged and tried again next time. Tasks must be safe with several replicas running them.
 */
export class Maintenance {
  readonly #tasks: Task[];
  readonly #log: FastifyBaseLogger;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #running = new Set<Promise<unknown>>();
  #stopped = false;

  constructor(tasks: Task[], log: FastifyBaseLogger) {
    this.#tasks = tasks.filter((task) => task.everyMs > 0);
    this.#log = log;
  }

  /** Starts every task now and keeps rescheduling it. */
  start(): void {
    for (const task of this.#tasks) this.#schedule(task, task.firstAfterMs ?? 0);
  }

  #schedule(task: Task, delay: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const run = task
        .run()
        .catch((err: unknown) => this.#log.warn({ err, task: task.name }, 'maintenance task failed; retrying later'))
        .finally(() => {
          this.#running.delete(run);
          this.#schedule(task, task.everyMs);
        });
      this.#running.add(run);
    }, delay);
    timer.unref();
    this.#timers.add(timer);
  }

  /** Stops scheduling and waits for runs in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await Promise.allSettled([...this.#running]);
  }
}

/**
 * When a heavy task first runs: not in the rush of a start-up, and spread a little so replicas
 * started together do not collide; never later than its interval.
 */
export function unhurriedStart(everyMs: number): number {
  return Math.min(everyMs, 60_000 + Math.floor(Math.random() * 30_000));
}

/**
 * The import watchdog: marks dead processes' jobs interrupted, queues interrupted jobs with
 * attempts left again, then looks for queued jobs.
 */
export function importWatchdog(runner: ImportRunner, everyMs: number): Task {
  return {
    name: 'import-watchdog',
    everyMs,
    async run() {
      await runner.markStale();
      await runner.resumeInterrupted();
      runner.kick();
    },
  };
}

/** The volume sweep: logs what it took back and, loudly, rows whose file is missing. */
export function volumeSweep(
  pool: pg.Pool,
  store: Store,
  options: { everyMs: number; graceMs: number },
  log: FastifyBaseLogger,
): Task {
  return {
    name: 'sweep',
    everyMs: options.everyMs,
    firstAfterMs: unhurriedStart(options.everyMs),
    async run() {
      const started = performance.now();
      const report = await sweep(pool, store, { graceMs: options.graceMs });
      if (!report.ran) return report;
      const ms = Math.round(performance.now() - started);
      log.info({ ...report, ms }, 'volume sweep done');
      if (report.missingFiles > 0) {
        log.error(
          { missingFiles: report.missingFiles, missingRows: report.missingRows, examples: report.missingExamples },
          'rows point at files the volume does not have',
        );
      }
      return report;
    },
  };
}

/** The inbox scan: takes in what was dropped into INBOX_DIR (the scheduler never runs two at once, nor does Inbox.scan). */
export function inboxScan(inbox: Inbox, everyMs: number): Task {
  return { name: 'inbox', everyMs, run: () => inbox.scan() };
}

/**
 * Removes the inbox's handled files once they are older than `keepMs`, hourly (or every
 * `keepMs` when that is shorter); off when `keepMs` is 0.
 */
export function inboxPrune(inbox: Inbox, keepMs: number): Task {
  const everyMs = keepMs > 0 ? Math.max(1000, Math.min(3_600_000, keepMs)) : 0;
  return { name: 'inbox-prune', everyMs, firstAfterMs: unhurriedStart(everyMs), run: () => inbox.prune(keepMs) };
}
