import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import { prepared, type Tx } from './transaction.ts';

/** Where an import job stands. */
export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'interrupted';

/** An uploaded file of a job, as kept on the volume until the job is done. */
export interface JobFile {
  name: string;
  path: string;
  bytes: number;
}

/** A record that could not be imported, and why. */
export interface JobError {
  record: string;
  message: string;
}

/** An import job row. */
export interface JobRow {
  id: string;
  dataset: string;
  split: string | null;
  format: string | null;
  status: JobStatus;
  files: JobFile[];
  total: number | null;
  processed: number;
  imported: number;
  duplicates: number;
  failed: number;
  next_index: number;
  errors: JobError[];
  message: string | null;
  attempts: number;
  owner: string | null;
  heartbeat_at: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

/** A job as the API shows it. */
export interface Job {
  id: string;
  dataset: string;
  split: string | null;
  format: string | null;
  status: JobStatus;
  total: number | null;
  processed: number;
  imported: number;
  duplicates: number;
  failed: number;
  errors: JobError[];
  message: string | null;
  attempts: number;
  files: { name: string; bytes: number }[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** How many failed records a job keeps the reasons of. */
export const MAX_JOB_ERRORS = 20;

/** The API shape of a job row. */
export function toJob(row: JobRow): Job {
  return {
    id: row.id,
    dataset: row.dataset,
    split: row.split,
    format: row.format,
    status: row.status,
    total: row.total,
    processed: row.processed,
    imported: row.imported,
    duplicates: row.duplicates,
    failed: row.failed,
    errors: row.errors,
    message: row.message,
    attempts: row.attempts,
    files: row.files.map((file) => ({ name: file.name, bytes: file.bytes })),
    createdAt: row.created_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}

/** A new job, queued. */
export interface NewJob {
  id: string;
  dataset: string;
  split: string | null;
  format: string;
  total: number | null;
  files: JobFile[];
}

/** Queues a job. */
export async function insertJob(tx: Tx, job: NewJob): Promise<Job> {
  const { rows } = await tx.query<JobRow>(
    prepared(
      `INSERT INTO import_jobs (id, dataset, split, format, total, files) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       RETURNING *`,
      [job.id, job.dataset, job.split, job.format, job.total, JSON.stringify(job.files)],
    ),
  );
  return toJob(rows[0] as JobRow);
}

/** What one committed batch adds to a job's counters. */
export interface JobAdvance {
  processed: number;
  imported: number;
  duplicates: number;
  failed: number;
  errors: JobError[];
  nextIndex: number;
  total: number | null;
}

/**
 * Adds a batch's counts to the job, in the batch's own transaction, so the counters and the
 * resume position always match the rows that are committed. False when the job is no longer
 * this owner's to run (it was marked interrupted meanwhile): the caller then rolls back.
 */
export async function advanceJob(tx: Tx, id: string, owner: string, step: JobAdvance): Promise<boolean> {
  const { rowCount } = await tx.query(
    prepared(
      `UPDATE import_jobs SET processed = processed + $3, imported = imported + $4, duplicates = duplicates + $5,
         failed = failed + $6, errors = errors || $7::jsonb, next_index = $8, total = coalesce($9, total),
         heartbeat_at = now()
       WHERE id = $1 AND owner = $2 AND status = 'running'`,
      [
        id,
        owner,
        step.processed,
        step.imported,
        step.duplicates,
        step.failed,
        JSON.stringify(step.errors),
        step.nextIndex,
        step.total,
      ],
    ),
  );
  return rowCount === 1;
}

/** Import job reads and state changes on the pool; every outage is the shared 503. */
export function jobStore(pool: pg.Pool) {
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    withPostgres(() => pool.query<R>(prepared(text, values)));

  return {
    /** One job. */
    async get(id: string): Promise<JobRow | undefined> {
      const { rows } = await query<JobRow>('SELECT * FROM import_jobs WHERE id = $1', [id]);
      return rows[0];
    },

    /** Takes the oldest queued job for this owner; several replicas never take the same one. */
    async claim(owner: string): Promise<JobRow | undefined> {
      const { rows } = await query<JobRow>(
        `UPDATE import_jobs SET status = 'running', owner = $1, heartbeat_at = now(),
           started_at = coalesce(started_at, now()), attempts = attempts + 1, message = NULL
         WHERE id = (SELECT id FROM import_jobs WHERE status = 'queued' ORDER BY created_at
                     FOR UPDATE SKIP LOCKED LIMIT 1)
         RETURNING *`,
        [owner],
      );
      return rows[0];
    },

    /** Says the owner is still at it; false when the job is no longer its own. */
    async heartbeat(id: string, owner: string): Promise<boolean> {
      const { rowCount } = await query(
        `UPDATE import_jobs SET heartbeat_at = now() WHERE id = $1 AND owner = $2 AND status = 'running'`,
        [id, owner],
      );
      return rowCount === 1;
    },

    /** Ends a running job: completed, failed (with the reason) or interrupted (resumable). */
    async finish(id: string, owner: string, status: 'completed' | 'failed' | 'interrupted', message: string | null) {
      const { rowCount } = await query(
        `UPDATE import_jobs SET status = $3, message = $4, finished_at = now(),
           total = CASE WHEN $3 = 'completed' THEN processed ELSE total END
         WHERE id = $1 AND owner = $2 AND status = 'running'`,
        [id, owner, status, message],
      );
      return rowCount === 1;
    },

    /**
     * Marks as interrupted every running job whose heartbeat is older than staleMs: the process
     * running it died or lost the database. Returns their ids and the owners they had.
     */
    async markStale(staleMs: number, self: string): Promise<Array<{ id: string; owner: string | null }>> {
      // a process never takes its own job for dead: a late heartbeat there means a busy event loop
      const { rows } = await query<{ id: string; owner: string | null }>(
        `UPDATE import_jobs SET status = 'interrupted', finished_at = now(),
           message = 'The import stopped when the process running it went away; retry it to finish, nothing is imported twice'
         WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1::float8 / 1000)
           AND owner IS DISTINCT FROM $2
         RETURNING id, owner`,
        [staleMs, self],
      );
      return rows;
    },

    /**
     * Queues again every interrupted job that has run fewer than maxAttempts times, so an import
     * cut off by a crash or a restart finishes by itself. Returns their ids.
     */
    async resumeInterrupted(maxAttempts: number): Promise<string[]> {
      const { rows } = await query<{ id: string }>(
        `UPDATE import_jobs SET status = 'queued', owner = NULL, message = NULL, finished_at = NULL
         WHERE status = 'interrupted' AND attempts < $1 RETURNING id`,
        [maxAttempts],
      );
      return rows.map((row) => row.id);
    },

    /** Queues an interrupted job again; undefined when it is not interrupted (or does not exist). */
    async requeue(id: string): Promise<JobRow | undefined> {
      const { rows } = await query<JobRow>(
        `UPDATE import_jobs SET status = 'queued', owner = NULL, message = NULL, finished_at = NULL
         WHERE id = $1 AND status = 'interrupted' RETURNING *`,
        [id],
      );
      return rows[0];
    },

    /** Jobs whose files may be removed: finished ones (and, by id, any that no longer exist). */
    async settled(ids: string[]): Promise<Set<string>> {
      const { rows } = await query<{ id: string }>(
        `SELECT u.job_id::text AS id FROM unnest($1::uuid[]) AS u(job_id)
         WHERE NOT EXISTS (SELECT 1 FROM import_jobs j
                           WHERE j.id = u.job_id AND j.status IN ('queued', 'running', 'interrupted'))`,
        [ids],
      );
      return new Set(rows.map((row) => row.id));
    },
  };
}

/** Import job access as the runner and routes see it. */
export type JobStore = ReturnType<typeof jobStore>;
