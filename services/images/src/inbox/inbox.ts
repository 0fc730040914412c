import type { Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { httpError } from '@berth/service-kit';
import type { FastifyBaseLogger } from 'fastify';
import type pg from 'pg';
import { Counter, type Registry } from 'prom-client';
import { acceptImage } from '../accept.ts';
import { forEachLimit } from '../concurrency.ts';
import { IN_MEMORY_UPLOAD } from '../receive.ts';
import { type Store, TooLarge } from '../storage/store.ts';
import { Claims } from './claims.ts';
import { DONE_DIR, FAILED_DIR, isIgnored, placementOf } from './layout.ts';
import { entriesUnder, moveKeeping, removeEmptyDirs } from './move.ts';
import { Unclaimable, type UnclaimableFile } from './unclaimable.ts';

/** How the inbox behaves; the limits are the upload limits, so an inbox file passes the same checks. */
export interface InboxOptions {
  dir: string;
  /** A file is taken once its size and mtime stayed the same for this long (0: at first sight). */
  settleMs: number;
  /** Claims of a replica whose heartbeat is older than this are given back to the inbox. */
  claimTimeoutMs: number;
  maxFiles: number;
  concurrency: number;
  maxBytes: number;
  maxPixels: number;
  replicaId: string;
}

/** What one scan did. */
export interface ScanReport {
  created: number;
  duplicates: number;
  failed: number;
  /** Claimed, then put back because something other than the file failed (PostgreSQL, the volume). */
  released: number;
  /** Seen but not taken yet: still settling, or over this scan's share. */
  waiting: number;
  /** Files of dead replicas' claims given back to the inbox. */
  recovered: number;
}

const OUTCOMES = ['created', 'duplicate', 'failed', 'released'] as const;
type Outcome = (typeof OUTCOMES)[number];

/** Folders deeper than this are not looked into (the layout has at most three). */
const MAX_DEPTH = 6;

interface Candidate {
  rel: string;
  segments: string[];
  stats: Stats;
}

interface Look {
  size: number;
  mtimeMs: number;
  ino: number;
  at: number;
}

function sameFile(a: Pick<Look, 'size' | 'mtimeMs' | 'ino'>, b: Stats): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** True for an error that is the file's own fault: it goes to .failed rather than back to the inbox. */
function isFileFault(err: unknown): boolean {
  if (err instanceof TooLarge) return true;
  const status = (err as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/**
 * The scheduled inbox: images dropped under `<dir>/<dataset>/[<split>/]<label>/` are claimed,
 * checked and stored like uploads (acceptImage), then moved to `.done/` under the same relative
 * path, or to `.failed/` with a `<name>.error.json` that says why. A file that has not settled yet
 * is left for a later scan; a failure that is not the file's (PostgreSQL down) puts it back and
 * ends the scan, so nothing is lost. Safe with several replicas on one inbox (see Claims).
 */
export class Inbox {
  readonly #pool: pg.Pool;
  readonly #store: Store;
  readonly #options: InboxOptions;
  readonly #log: FastifyBaseLogger;
  readonly #claims: Claims;
  readonly #files: Counter<'outcome'>;
  readonly #removed: Counter;
  readonly #unclaimable: Unclaimable;
  readonly #seen = new Map<string, Look>();
  #running: Promise<ScanReport> | undefined;
  #outage = false;

  constructor(pool: pg.Pool, store: Store, options: InboxOptions, registry: Registry, log: FastifyBaseLogger) {
    this.#pool = pool;
    this.#store = store;
    this.#options = options;
    this.#log = log;
    this.#claims = new Claims(options.dir, options.replicaId);
    this.#files = new Counter({
      name: 'images_inbox_files_total',
      help: 'Inbox files handled, by outcome: created (new image), duplicate (same bytes already in the data set), failed (moved to .failed), released (put back for a later scan)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    for (const outcome of OUTCOMES) this.#files.labels(outcome).inc(0);
    this.#removed = new Counter({
      name: 'images_inbox_removed_total',
      help: 'Files removed from the inbox folders .done and .failed once they were older than INBOX_KEEP',
      registers: [registry],
    });
    this.#unclaimable = new Unclaimable(options.dir, registry, log);
  }

  /** The inbox folder. */
  get dir(): string {
    return this.#options.dir;
  }

  /** The files a scan could not claim (at most `limit` of them) and how many there are. */
  unclaimable(limit: number): { count: number; files: UnclaimableFile[] } {
    return this.#unclaimable.list(limit);
  }

  /** Runs one scan; a call while a scan runs gets that scan's report rather than starting another. */
  scan(): Promise<ScanReport> {
    this.#running ??= this.#scan().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /**
   * Removes what the scans put in `.done` and `.failed` (files and their `.error.json`) more than
   * `keepMs` before `now`, then the folders that left empty. A file's age there is its inode's
   * change time, which the move into the folder set. Several replicas may do this at once: a file
   * another one removed first is simply gone. Returns how many files went.
   */
  async prune(keepMs: number, now = Date.now()): Promise<number> {
    const cutoff = now - keepMs;
    let removed = 0;
    for (const root of [join(this.dir, DONE_DIR), join(this.dir, FAILED_DIR)]) {
      await forEachLimit(
        (await entriesUnder(root)).filter((entry) => entry.isFile()),
        this.#options.concurrency,
        async (entry) => {
          const path = join(entry.parentPath, entry.name);
          try {
            if ((await lstat(path)).ctimeMs > cutoff) return;
            await unlink(path);
            removed++;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          }
        },
      );
      await removeEmptyDirs(root);
    }
    this.#removed.inc(removed);
    if (removed > 0) this.#log.info({ removed, keepMs }, 'removed handled files from the inbox');
    return removed;
  }

  /** Waits for a scan in progress and removes this replica's (then empty) claim folder. */
  async close(): Promise<void> {
    await this.#running?.catch(() => {});
    await this.#claims.close();
  }

  async #scan(): Promise<ScanReport> {
    const report: ScanReport = { created: 0, duplicates: 0, failed: 0, released: 0, waiting: 0, recovered: 0 };
    this.#outage = false;
    await mkdir(this.dir, { recursive: true });
    await this.#claims.heartbeat();
    // a long scan keeps saying it is alive, so no other replica takes its claims back
    const beat = setInterval(
      () => this.#claims.heartbeat().catch(() => {}),
      Math.max(1000, Math.floor(this.#options.claimTimeoutMs / 4)),
    );
    beat.unref();
    try {
      report.recovered = await this.#claims.recover(this.#options.claimTimeoutMs);
      const candidates = await this.#list();
      this.#unclaimable.keepOnly(new Set(candidates.map((c) => c.rel)));
      // files that could not be claimed are tried again, after the others: they never hold up the rest
      const settled = this.#settled(candidates);
      const ready = [
        ...settled.filter((c) => !this.#unclaimable.has(c.rel)),
        ...settled.filter((c) => this.#unclaimable.has(c.rel)),
      ].slice(0, this.#options.maxFiles);
      report.waiting = candidates.length - ready.length;
      await forEachLimit(ready, this.#options.concurrency, (candidate) => this.#take(candidate, report));
      await this.#claims.tidy();
    } finally {
      clearInterval(beat);
    }
    if (report.created + report.duplicates + report.failed + report.released + report.recovered > 0) {
      this.#log.info({ inbox: report }, 'inbox scan done');
    }
    return report;
  }

  /** The files in the inbox, dot-names and partial files left out, at most ten scans' worth. */
  async #list(): Promise<Candidate[]> {
    const limit = this.#options.maxFiles * 10;
    const found: Candidate[] = [];
    const walk = async (segments: string[]) => {
      const dir = join(this.dir, ...segments);
      const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
        // a folder removed by its owner while the scan ran
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
        throw err;
      });
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const entry of entries) {
        if (found.length >= limit) return;
        if (isIgnored(entry.name)) continue;
        const path = [...segments, entry.name];
        if (entry.isDirectory()) {
          if (path.length < MAX_DEPTH) await walk(path);
          continue;
        }
        const stats = await lstat(join(dir, entry.name)).catch(() => undefined);
        if (stats) found.push({ rel: path.join('/'), segments: path, stats });
      }
    };
    await walk([]);
    return found;
  }

  /**
   * The candidates that have settled: seen by an earlier scan at least settleMs ago with the same
   * size, mtime and inode, and not modified for settleMs. A file still being written changes
   * between two looks and waits. What was not seen this time is forgotten.
   */
  #settled(candidates: Candidate[]): Candidate[] {
    const { settleMs } = this.#options;
    if (settleMs === 0) return candidates;
    const now = Date.now();
    const ready: Candidate[] = [];
    const listed = new Set<string>();
    for (const candidate of candidates) {
      const { rel, stats } = candidate;
      listed.add(rel);
      const prior = this.#seen.get(rel);
      if (!prior || !sameFile(prior, stats)) {
        this.#seen.set(rel, { size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino, at: now });
        continue;
      }
      if (now - prior.at >= settleMs && now - stats.mtimeMs >= settleMs) ready.push(candidate);
    }
    for (const rel of this.#seen.keys()) if (!listed.has(rel)) this.#seen.delete(rel);
    return ready;
  }

  #count(report: ScanReport, outcome: Outcome): void {
    this.#files.labels(outcome).inc();
    if (outcome === 'created') report.created++;
    else if (outcome === 'duplicate') report.duplicates++;
    else if (outcome === 'failed') report.failed++;
    else report.released++;
  }

  /** Claims one file and sees it through to .done, .failed or back into the inbox. */
  async #take(candidate: Candidate, report: ScanReport): Promise<void> {
    // once PostgreSQL or the volume failed, the rest of this scan's files stay where they are
    if (this.#outage) return;
    let claimed: string | undefined;
    try {
      claimed = await this.#claims.claim(candidate.rel);
    } catch (err) {
      // e.g. EACCES: copied in as root into a folder the service cannot write; the rest go on
      await this.#unclaimable.add(candidate.rel, err as NodeJS.ErrnoException);
      return;
    }
    if (!claimed) return;
    this.#unclaimable.claimed(candidate.rel);
    let outcome: Outcome;
    try {
      outcome = await this.#ingest(claimed, candidate);
    } catch (err) {
      if (isFileFault(err)) {
        this.#seen.delete(candidate.rel);
        await this.#fail(claimed, candidate.rel, err as Error);
        this.#count(report, 'failed');
        return;
      }
      this.#outage = true;
      this.#log.warn({ err, file: candidate.rel }, 'inbox file put back for the next scan');
      await this.#claims.release(claimed);
      this.#count(report, 'released');
      return;
    }
    if (outcome === 'released') {
      // it changed after it was claimed: someone is still writing it
      await this.#claims.release(claimed);
    } else {
      // the image is stored whatever happens now; a file that cannot be moved comes back as a duplicate
      this.#seen.delete(candidate.rel);
      await moveKeeping(claimed, join(this.dir, DONE_DIR), candidate.rel);
    }
    this.#count(report, outcome);
  }

  /** Stores a claimed file as an upload; throws the same 4xx errors an upload would get. */
  async #ingest(claimed: string, candidate: Candidate): Promise<Outcome> {
    const { maxBytes, maxPixels } = this.#options;
    if (!candidate.stats.isFile()) {
      throw httpError(
        400,
        'NOT_A_FILE',
        'This is not a regular file (a link, a pipe or a device); put the file itself in the inbox',
      );
    }
    const fields = placementOf(candidate.segments);
    let handle: FileHandle;
    try {
      handle = await open(claimed, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') {
        throw httpError(403, 'UNREADABLE', `The file cannot be read (${code}); give the service read access`);
      }
      throw err;
    }
    try {
      const stats = await handle.stat();
      if (!sameFile(candidate.stats, stats)) return 'released';
      if (stats.size === 0) throw httpError(400, 'EMPTY_FILE', 'The file is empty');
      if (stats.size > maxBytes) {
        throw httpError(
          413,
          'TOO_LARGE',
          `The file is ${stats.size} bytes, more than the limit of ${maxBytes} bytes (MAX_UPLOAD_BYTES)`,
        );
      }
      const upload = await this.#store.spool(handle.createReadStream({ autoClose: false }), maxBytes, IN_MEMORY_UPLOAD);
      const { created } = await acceptImage(this.#pool, this.#store, upload, fields, maxPixels);
      return created ? 'created' : 'duplicate';
    } finally {
      await handle.close();
    }
  }

  /** Moves a file to .failed (same relative path, never over another) with `<name>.error.json` beside it. */
  async #fail(claimed: string, rel: string, err: Error): Promise<void> {
    const to = await moveKeeping(claimed, join(this.dir, FAILED_DIR), rel);
    const status = err instanceof TooLarge ? 413 : (err as { statusCode?: number }).statusCode;
    const reason = {
      file: rel,
      statusCode: status,
      code: err instanceof TooLarge ? 'TOO_LARGE' : (err as { code?: string }).code,
      reason:
        err instanceof TooLarge ? `The file grew past the limit of ${err.limit} bytes (MAX_UPLOAD_BYTES)` : err.message,
      failedAt: new Date().toISOString(),
      replica: this.#options.replicaId,
    };
    await writeFile(`${to}.error.json`, `${JSON.stringify(reason, null, 2)}\n`);
  }
}
