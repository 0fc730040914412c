import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { isNoSpace, isPostgresUnavailable } from '@berth/service-kit';
import type { FastifyBaseLogger } from 'fastify';
import type pg from 'pg';
import { type JobRow, type JobStore, jobStore } from '../db/jobs.ts';
import { FormatError } from '../formats/index.ts';
import { freeBytes } from '../storage/free-space.ts';
import { type Store, TEMP_WRITER } from '../storage/store.ts';
import { removeTempsOf } from '../storage/sweep.ts';
import { JobTakenOver } from './batch.ts';
import { type RunSettings, runImport } from './run.ts';

/** How the runner behaves. */
export interface RunnerSettings extends RunSettings {
  /** A running job whose heartbeat is older than this is taken for dead. */
  staleMs: number;
  /** Runs an interrupted job gets before it waits for a manual retry (a job that keeps killing its process). */
  maxAttempts: number;
  /** Interrupted jobs are resumed only while the volume has at least this much free. */
  minFreeBytes: number;
}

/** Why the current run was stopped. */
class Stopped extends Error {}

/**
 * Runs queued import jobs, one at a time per process. Jobs live in PostgreSQL and their files on
 * the shared volume, so whichever replica is free claims the next one (FOR UPDATE SKIP LOCKED).
 * While a job runs its heartbeat is renewed; a job whose heartbeat goes stale (its process died)
 * is marked interrupted by any replica, at start-up and on every maintenance pass, and can be
 * queued again to finish where its last committed batch ended.
 */
export class ImportRunner {
  /** The writer tag of this process's temp files, so a replica that finds this one dead can remove them. */
  readonly owner = TEMP_WRITER;
  readonly jobs: JobStore;
  readonly #pool: pg.Pool;
  readonly #store: Store;
  readonly #settings: RunnerSettings;
  readonly #log: FastifyBaseLogger;
  #loop: Promise<void> | undefined;
  #again = false;
  #closing = false;
  #current: AbortController | undefined;
  readonly #cleaning = new Set<Promise<void>>();

  constructor(pool: pg.Pool, store: Store, settings: RunnerSettings, log: FastifyBaseLogger) {
    this.#pool = pool;
    this.#store = store;
    this.#settings = settings;
    this.#log = log;
    this.jobs = jobStore(pool);
  }

  /** Looks for queued work now (after a new job, or on a maintenance pass). */
  kick(): void {
    if (this.#closing) return;
    if (this.#loop) {
      this.#again = true;
      return;
    }
    this.#loop = this.#drain().finally(() => {
      this.#loop = undefined;
    });
  }

  /** Resolves when the runner has nothing in hand; for tests and shutdown. */
  async idle(): Promise<void> {
    while (this.#loop) await this.#loop;
  }

  /**
   * Marks dead processes' jobs as interrupted, and removes the temp files those processes left
   * (in the background: it walks the volume's folders); returns the jobs' ids.
   */
  async markStale(): Promise<string[]> {
    const stale = await this.jobs.markStale(this.#settings.staleMs, this.owner);
    for (const { id } of stale) this.#log.warn({ job: id }, 'import job interrupted: the process running it went away');
    const writers = new Set(stale.flatMap(({ owner }) => (owner && owner !== this.owner ? [owner] : [])));
    for (const writer of writers) {
      const removing = removeTempsOf(this.#store, writer).then(
        (removed) => this.#log.info({ writer, removed }, 'temp files of a process that died removed'),
        (err: Error) => this.#log.warn({ err, writer }, 'could not remove the temp files of a process that died'),
      );
      this.#cleaning.add(removing);
      void removing.finally(() => this.#cleaning.delete(removing));
    }
    return stale.map(({ id }) => id);
  }

  /** Resolves when no temp-file clean-up is running; for tests and shutdown. */
  async cleaned(): Promise<void> {
    await Promise.allSettled([...this.#cleaning]);
  }

  /** Queues interrupted jobs again that have attempts left; returns their ids. */
  async resumeInterrupted(): Promise<string[]> {
    // a job stopped by a full volume would only fill it again
    const free = await freeBytes(this.#store.root).catch(() => 0);
    if (free < this.#settings.minFreeBytes) return [];
    const ids = await this.jobs.resumeInterrupted(this.#settings.maxAttempts);
    for (const id of ids) this.#log.info({ job: id }, 'import job resumes after an interruption');
    return ids;
  }

  /** Stops taking jobs; a running one is stopped between batches and marked interrupted. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#current?.abort(new Stopped('The service is shutting down'));
    await this.idle();
    await this.cleaned();
  }

  async #drain(): Promise<void> {
    do {
      this.#again = false;
      for (;;) {
        if (this.#closing) return;
        let job: JobRow | undefined;
        try {
          job = await this.jobs.claim(this.owner);
        } catch (err) {
          this.#log.warn({ err }, 'could not look for queued import jobs; trying again shortly');
          setTimeout(() => this.kick(), 1000).unref();
          return;
        }
        if (!job) break;
        await this.#run(job);
      }
    } while (this.#again);
  }

  async #run(job: JobRow): Promise<void> {
    const controller = new AbortController();
    this.#current = controller;
    const log = this.#log.child({ job: job.id });
    log.info({ dataset: job.dataset, from: job.next_index }, 'import job started');
    const beat = setInterval(
      () => {
        this.jobs.heartbeat(job.id, this.owner).then(
          (mine) => {
            if (!mine) controller.abort(new JobTakenOver(job.id));
          },
          () => {},
        );
      },
      Math.max(250, Math.floor(this.#settings.staleMs / 3)),
    );
    try {
      await this.#attempt(job, controller.signal);
      await this.jobs.finish(job.id, this.owner, 'completed', null);
      await this.#removeFiles(job);
      log.info('import job completed');
    } catch (err) {
      await this.#settle(job, err, controller.signal, log);
    } finally {
      clearInterval(beat);
      this.#current = undefined;
    }
  }

  // A lost database connection is waited out for a while; the batch in flight was rolled back,
  // so trying again from the job's committed position imports nothing twice
  async #attempt(job: JobRow, signal: AbortSignal): Promise<void> {
    const ctx = { pool: this.#pool, store: this.#store, owner: this.owner, settings: this.#settings, signal };
    const deadline = Date.now() + this.#settings.staleMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await runImport(job, ctx);
        return;
      } catch (err) {
        if (!isOutage(err) || signal.aborted || Date.now() > deadline) throw err;
        this.#log.warn({ job: job.id, err }, 'import paused: PostgreSQL is unavailable');
        await sleep(Math.min(200 * 2 ** attempt, 2000));
        const fresh = await this.jobs.get(job.id).catch(() => undefined);
        if (fresh) Object.assign(job, fresh);
      }
    }
  }

  async #settle(job: JobRow, err: unknown, signal: AbortSignal, log: FastifyBaseLogger): Promise<void> {
    const reason = signal.aborted ? signal.reason : err;
    if (reason instanceof JobTakenOver) {
      log.warn('import job stopped: another process marked it interrupted');
      return;
    }
    if (reason instanceof Stopped) {
      await this.jobs
        .finish(
          job.id,
          this.owner,
          'interrupted',
          'The service stopped while the import ran; retry it to finish, nothing is imported twice',
        )
        .catch(() => {});
      log.info('import job interrupted by shutdown');
      return;
    }
    if (isNoSpace(err)) {
      // the files stay: once there is room the job goes on from its last committed batch
      log.error({ err }, 'import job stopped: the image volume is full');
      await this.jobs
        .finish(
          job.id,
          this.owner,
          'interrupted',
          'The import ran out of space on the image volume; it resumes by itself once space is freed (or retry it), nothing is imported twice',
        )
        .catch(() => {});
      return;
    }
    if (isOutage(err)) {
      // its heartbeat goes stale and whichever replica sees that first marks it interrupted
      log.error({ err }, 'import job stopped: PostgreSQL stayed unavailable');
      return;
    }
    const message =
      err instanceof FormatError ? err.message : 'The import failed on our side; see the service log for the cause';
    if (!(err instanceof FormatError)) log.error({ err }, 'import job failed');
    else log.info({ reason: err.message }, 'import job failed on malformed input');
    // the files go only while the job is still this process's: one taken over meanwhile resumes elsewhere
    const mine = await this.jobs.finish(job.id, this.owner, 'failed', message).catch(() => false);
    if (mine) await this.#removeFiles(job);
  }

  async #removeFiles(job: JobRow): Promise<void> {
    await rm(this.#store.importDir(job.id), { recursive: true, force: true }).catch(() => {});
  }
}

function isOutage(err: unknown): boolean {
  if (isPostgresUnavailable(err)) return true;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return (err as { statusCode?: number } | null)?.statusCode === 503 && isPostgresUnavailable(cause);
}
