import type { Dirent } from 'node:fs';
import { opendir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { jobStore } from '../db/jobs.ts';
import { SWEEP_LOCK } from './locks.ts';
import { reclaimFiles } from './reclaim.ts';
import { IMPORT_DIR, type Store, TEMP_DIR, TEMP_PREFIX, THUMBNAIL_DIR } from './store.ts';

/** What one sweep found and did. */
export interface SweepReport {
  /** False when another replica was sweeping, so this one did nothing. */
  ran: boolean;
  /** Content files looked at. */
  files: number;
  /** Content files removed because no row pointed at them. */
  removed: number;
  /** Thumbnails removed with them (or left over from content already gone). */
  thumbnails: number;
  /** Temp files older than the grace period removed (a crash or a failed write left them). */
  temps: number;
  /** Upload folders of finished or vanished import jobs removed. */
  imports: number;
  /** Distinct files that rows point at but the volume does not have. */
  missingFiles: number;
  /** Rows pointing at a missing file. */
  missingRows: number;
  /** Up to 20 ids of such rows, for the log. */
  missingExamples: string[];
}

/** How a sweep behaves. */
export interface SweepOptions {
  /** Files younger than this are left alone, whatever the database says. */
  graceMs: number;
}

const HEX2 = /^[0-9a-f]{2}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const THUMBNAIL = /^([0-9a-f]{64})-\d+\.webp$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CHECK_BATCH = 1000;

async function entries(dir: string): Promise<Dirent[]> {
  const list: Dirent[] = [];
  try {
    for await (const entry of await opendir(dir)) list.push(entry);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return list;
}

async function olderThan(path: string, cutoff: number): Promise<boolean> {
  try {
    return (await stat(path)).mtimeMs < cutoff;
  } catch {
    return false;
  }
}

/** The `ab/cd` folders under a root, in order. */
async function* leafDirs(root: string): AsyncGenerator<string> {
  const top = (await entries(root)).filter((e) => e.isDirectory() && HEX2.test(e.name)).map((e) => e.name);
  for (const a of top.sort()) {
    const inner = (await entries(join(root, a))).filter((e) => e.isDirectory() && HEX2.test(e.name)).map((e) => e.name);
    for (const b of inner.sort()) yield join(root, a, b);
  }
}

/**
 * Takes back what no row uses and reports what rows miss. Only one replica sweeps at a time (a
 * session advisory lock; the others skip), and every removal goes through the per-file exclusive
 * lock and a fresh reference check (reclaimFiles), so a file whose row is about to commit is never
 * taken. Files younger than the grace period are not even considered.
 */
export async function sweep(pool: pg.Pool, store: Store, options: SweepOptions): Promise<SweepReport> {
  const report: SweepReport = {
    ran: false,
    files: 0,
    removed: 0,
    thumbnails: 0,
    temps: 0,
    imports: 0,
    missingFiles: 0,
    missingRows: 0,
    missingExamples: [],
  };
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [...SWEEP_LOCK]);
    if (!rows[0]?.ok) return report;
    report.ran = true;
    try {
      const cutoff = Date.now() - options.graceMs;
      await sweepContent(pool, store, cutoff, report);
      await sweepThumbnails(pool, store, cutoff, report);
      await sweepTemps(join(store.root, TEMP_DIR), cutoff, report);
      await sweepImports(pool, store, cutoff, report);
      await findMissing(pool, store, report);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [...SWEEP_LOCK]).catch((err: Error) => {
        broken = err;
      });
    }
    return report;
  } finally {
    client.release(broken);
  }
}

async function sweepContent(pool: pg.Pool, store: Store, cutoff: number, report: SweepReport): Promise<void> {
  let candidates: string[] = [];
  const flush = async () => {
    const gone = await reclaimFiles(pool, store, candidates);
    report.removed += gone.length;
    candidates = [];
  };
  for await (const dir of leafDirs(store.root)) {
    for (const entry of await entries(dir)) {
      if (!entry.isFile()) continue;
      const path = join(dir, entry.name);
      if (entry.name.startsWith(TEMP_PREFIX)) {
        if (await olderThan(path, cutoff)) {
          await unlink(path).catch(() => {});
          report.temps++;
        }
        continue;
      }
      if (!SHA256.test(entry.name)) continue;
      report.files++;
      if (await olderThan(path, cutoff)) candidates.push(entry.name);
      if (candidates.length >= CHECK_BATCH) await flush();
    }
  }
  if (candidates.length > 0) await flush();
}

async function sweepThumbnails(pool: pg.Pool, store: Store, cutoff: number, report: SweepReport): Promise<void> {
  for await (const dir of leafDirs(join(store.root, THUMBNAIL_DIR))) {
    const byContent = new Map<string, string[]>();
    for (const entry of await entries(dir)) {
      const path = join(dir, entry.name);
      if (entry.name.startsWith(TEMP_PREFIX)) {
        if (await olderThan(path, cutoff)) {
          await unlink(path).catch(() => {});
          report.temps++;
        }
        continue;
      }
      const match = THUMBNAIL.exec(entry.name);
      if (!match?.[1] || !(await olderThan(path, cutoff))) continue;
      const paths = byContent.get(match[1]) ?? [];
      paths.push(path);
      byContent.set(match[1], paths);
    }
    if (byContent.size === 0) continue;
    // a thumbnail can always be made again, so no lock is needed: it goes when its content has no row
    const { rows } = await pool.query<{ sha: string }>(
      'SELECT sha FROM unnest($1::text[]) AS sha WHERE NOT EXISTS (SELECT 1 FROM images WHERE sha256 = sha)',
      [[...byContent.keys()]],
    );
    for (const { sha } of rows) {
      for (const path of byContent.get(sha) ?? []) {
        await unlink(path).catch(() => {});
        report.thumbnails++;
      }
    }
  }
}

async function sweepTemps(dir: string, cutoff: number, report: SweepReport): Promise<void> {
  for (const entry of await entries(dir)) {
    const path = join(dir, entry.name);
    if (entry.isFile() && (await olderThan(path, cutoff))) {
      await unlink(path).catch(() => {});
      report.temps++;
    }
  }
}

async function sweepImports(pool: pg.Pool, store: Store, cutoff: number, report: SweepReport): Promise<void> {
  const root = join(store.root, IMPORT_DIR);
  const old: string[] = [];
  for (const entry of await entries(root)) {
    if (entry.isDirectory() && UUID.test(entry.name) && (await olderThan(join(root, entry.name), cutoff))) {
      old.push(entry.name);
    }
  }
  if (old.length === 0) return;
  const settled = await jobStore(pool).settled(old);
  for (const id of settled) {
    await rm(join(root, id), { recursive: true, force: true });
    report.imports++;
  }
}

async function findMissing(pool: pg.Pool, store: Store, report: SweepReport): Promise<void> {
  let after = '';
  for (;;) {
    const { rows } = await pool.query<{ sha256: string }>(
      'SELECT DISTINCT sha256 FROM images WHERE sha256 > $1 ORDER BY sha256 LIMIT $2',
      [after, CHECK_BATCH],
    );
    if (rows.length === 0) break;
    after = rows.at(-1)?.sha256 ?? after;
    const missing: string[] = [];
    for (const { sha256 } of rows) if (!(await store.has(sha256))) missing.push(sha256);
    if (missing.length > 0) {
      // rows deleted (and their files reclaimed) since the page was read are not missing anything
      const { rows: still } = await pool.query<{ id: string; sha256: string }>(
        'SELECT id, sha256 FROM images WHERE sha256 = ANY($1::text[]) ORDER BY id',
        [missing],
      );
      const files = new Set<string>();
      for (const row of still) {
        if (await store.has(row.sha256)) continue;
        files.add(row.sha256);
        report.missingRows++;
        if (report.missingExamples.length < 20) report.missingExamples.push(row.id);
      }
      report.missingFiles += files.size;
    }
    if (rows.length < CHECK_BATCH) break;
  }
}

/**
 * Removes the temp files one writer left (a process that died mid-import: its tag is its job's
 * owner), at once rather than after the sweep's grace period; returns how many. Only that
 * writer's names are touched, so the temp files of live replicas are safe.
 */
export async function removeTempsOf(store: Store, writer: string): Promise<number> {
  const prefix = `${TEMP_PREFIX}${writer}-`;
  let removed = 0;
  const clean = async (dir: string) => {
    for (const entry of await entries(dir)) {
      if (entry.isFile() && entry.name.startsWith(prefix)) {
        await unlink(join(dir, entry.name)).then(
          () => removed++,
          () => {},
        );
      }
    }
  };
  await clean(join(store.root, TEMP_DIR));
  for await (const dir of leafDirs(store.root)) await clean(dir);
  for await (const dir of leafDirs(join(store.root, THUMBNAIL_DIR))) await clean(dir);
  return removed;
}
