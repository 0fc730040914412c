import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { forEachLimit } from '../concurrency.ts';
import { FileWriters } from './file-writers.ts';

/** File writer threads when the caller does not say (FILE_WRITERS). */
export const DEFAULT_WRITERS = 4;

/** A file written under a temporary name, fully flushed to disk, waiting to be put in place. */
export interface Staged {
  path: string;
  sha256: string;
  bytes: number;
  /** Set once the file was renamed to its final name, so there is no temp file left to remove. */
  placed?: boolean;
}

/** A received upload: in memory when small, else in a temp file. */
export interface Spooled {
  sha256: string;
  bytes: number;
  data?: Buffer;
  staged?: Staged;
}

/** Raised while streaming when the content grows past the allowed size; the temp file is gone by then. */
export class TooLarge extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`Content is larger than ${limit} bytes`);
    this.limit = limit;
  }
}

/** The folder (under the root) for files still being received. */
export const TEMP_DIR = '.tmp';
/** The folder for thumbnails, keyed like the originals. */
export const THUMBNAIL_DIR = 'thumbnails';
/** The folder for data set import uploads, one subfolder per job. */
export const IMPORT_DIR = '.imports';
/** Temporary files start with this, wherever they are, so the sweep can tell them from content. */
export const TEMP_PREFIX = '.tmp-';

const SHA256 = /^[0-9a-f]{64}$/;

function tempName(): string {
  return `${TEMP_PREFIX}${randomBytes(9).toString('base64url')}`;
}

/** Counts and hashes bytes on their way through, failing once there are more than `limit`. */
class Measure extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  readonly #limit: number;
  constructor(limit: number) {
    super();
    this.#limit = limit;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null, data?: Buffer) => void) {
    this.bytes += chunk.length;
    if (this.bytes > this.#limit) {
      callback(new TooLarge(this.#limit));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

/**
 * The content-addressed file store: one file per distinct content at `<root>/ab/cd/<sha256>`.
 * Files only ever appear under their final name by rename(2) of a complete, fsynced temp file on
 * the same file system, so a reader or a crash never sees half a file.
 */
export class Store {
  readonly root: string;
  readonly #writers: FileWriters;

  /** `writers`: threads that write, rename and sync files (FILE_WRITERS). */
  constructor(root: string, options: { writers?: number } = {}) {
    this.root = resolve(root);
    this.#writers = new FileWriters(options.writers ?? DEFAULT_WRITERS);
  }

  /** Creates the root and the temp folder; call once at start-up. */
  async init(): Promise<void> {
    await mkdir(join(this.root, TEMP_DIR), { recursive: true });
    await mkdir(join(this.root, IMPORT_DIR), { recursive: true });
  }

  /** Where the file with this hash lives. */
  path(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`"${sha256}" is not a SHA-256 in hex`);
    return join(this.root, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  /** Where a thumbnail of the file with this hash lives. */
  thumbnailPath(sha256: string, size: number): string {
    if (!SHA256.test(sha256)) throw new Error(`"${sha256}" is not a SHA-256 in hex`);
    return join(this.root, THUMBNAIL_DIR, sha256.slice(0, 2), sha256.slice(2, 4), `${sha256}-${size}.webp`);
  }

  /**
   * Receives an upload: bytes are hashed and counted as they arrive and kept in memory while they
   * fit in `memoryLimit`; past that they spill to a temp file, streaming, so a large upload never
   * sits in memory whole. More than `limit` bytes fails with TooLarge and leaves no file.
   */
  async spool(source: AsyncIterable<Buffer>, limit: number, memoryLimit: number): Promise<Spooled> {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let bytes = 0;
    let file: { path: string; handle: FileHandle } | undefined;
    try {
      for await (const chunk of source) {
        bytes += chunk.length;
        if (bytes > limit) throw new TooLarge(limit);
        hash.update(chunk);
        if (file) {
          await file.handle.write(chunk);
          continue;
        }
        chunks.push(chunk);
        if (bytes > memoryLimit) {
          const path = join(this.root, TEMP_DIR, tempName());
          file = { path, handle: await open(path, 'wx') };
          await file.handle.writev(chunks);
          chunks.length = 0;
        }
      }
      const sha256 = hash.digest('hex');
      if (!file) return { sha256, bytes, data: Buffer.concat(chunks, bytes) };
      await file.handle.datasync();
      await file.handle.close();
      return { sha256, bytes, staged: { path: file.path, sha256, bytes } };
    } catch (err) {
      if (file) {
        await file.handle.close().catch(() => {});
        await unlink(file.path).catch(ignoreMissing);
      }
      throw err;
    }
  }

  /**
   * Streams bytes into a new file at `path`, hashing and counting them, fsynced before it
   * resolves. More than `limit` bytes fails with TooLarge; on any failure the file is removed.
   */
  async receive(source: Readable, path: string, limit: number): Promise<{ sha256: string; bytes: number }> {
    const measure = new Measure(limit);
    try {
      // flush: fsync before close, so a later rename never exposes data still in the page cache
      await pipeline(source, measure, createWriteStream(path, { flags: 'wx', flush: true }));
    } catch (err) {
      await unlink(path).catch(ignoreMissing);
      throw err;
    }
    return { sha256: measure.hash.digest('hex'), bytes: measure.bytes };
  }

  /** Writes bytes whose hash is known to a temp file next to their final place, fsynced. */
  async stageBytes(bytes: Uint8Array, sha256: string): Promise<Staged> {
    const path = join(dirname(this.path(sha256)), tempName());
    await this.#writers.run({ writes: [{ path, bytes }] });
    return { path, sha256, bytes: bytes.byteLength };
  }

  /**
   * stageBytes for many files, spread over the file writers. All or nothing: when one write fails,
   * the temp files the others wrote are removed before the error is thrown.
   */
  async stageMany(files: Array<{ bytes: Uint8Array; sha256: string }>): Promise<Staged[]> {
    const staged = files.map((file) => ({
      path: join(dirname(this.path(file.sha256)), tempName()),
      sha256: file.sha256,
      bytes: file.bytes.byteLength,
      data: file.bytes,
    }));
    try {
      await this.#writers.runSplit(staged, (part) => ({
        writes: part.map((file) => ({ path: file.path, bytes: file.data })),
      }));
    } catch (err) {
      await forEachLimit(staged, 32, (file) => unlink(file.path).catch(ignoreMissing)).catch(() => {});
      throw err;
    }
    return staged.map(({ path, sha256, bytes }) => ({ path, sha256, bytes }));
  }

  /**
   * Renames a staged file to its final name and returns the folder it went into. The rename is
   * only durable once that folder is synced (syncDirs); callers sync before their row commits.
   */
  async place(staged: Staged): Promise<string> {
    const target = this.path(staged.sha256);
    await this.#writers.run({ moves: [{ from: staged.path, to: target }] });
    staged.placed = true;
    return dirname(target);
  }

  /**
   * Renames staged files to their final names and syncs their folders, so the renames are
   * durable when it resolves. A failure can leave some renamed and others not: callers reclaim
   * every file they asked for (a file some row uses is kept) and discard the staged ones.
   */
  async placeSynced(files: Staged[]): Promise<void> {
    await this.#writers.runSplit(files, (part) => ({
      moves: part.map((file) => ({ from: file.path, to: this.path(file.sha256) })),
      syncDirs: part.map((file) => dirname(this.path(file.sha256))),
    }));
    for (const file of files) file.placed = true;
  }

  /**
   * Writes files that may be made again (thumbnails) under their final names: each to a temp file
   * beside it, flushed, then renamed over, so no reader meets half a file. One writer task.
   */
  async putFiles(files: Array<{ path: string; bytes: Uint8Array }>): Promise<void> {
    const temps = files.map((file) => ({ ...file, temp: join(dirname(file.path), tempName()) }));
    try {
      await this.#writers.run({
        writes: temps.map((file) => ({ path: file.temp, bytes: file.bytes })),
        moves: temps.map((file) => ({ from: file.temp, to: file.path })),
      });
    } catch (err) {
      await Promise.all(temps.map((file) => unlink(file.temp).catch(ignoreMissing))).catch(() => {});
      throw err;
    }
  }

  /** fsyncs folders so the renames in them survive a crash. */
  async syncDirs(dirs: Iterable<string>): Promise<void> {
    await this.#writers.runSplit([...new Set(dirs)], (part) => ({ syncDirs: part }));
  }

  /** Stops the file writer threads; call at shutdown. */
  close(): Promise<void> {
    return this.#writers.close();
  }

  /** Removes a staged file that was not placed; after a rename there is nothing left to remove. */
  async discard(staged: Staged | undefined): Promise<void> {
    if (staged && !staged.placed) await unlink(staged.path).catch(ignoreMissing);
  }

  /** True when the file with this hash is in place. */
  async has(sha256: string): Promise<boolean> {
    try {
      await stat(this.path(sha256));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Deletes a file and its thumbnails; missing ones are fine. */
  async remove(sha256: string): Promise<void> {
    await unlink(this.path(sha256)).catch(ignoreMissing);
    await Promise.all(THUMBNAIL_SIZES.map((size) => unlink(this.thumbnailPath(sha256, size)).catch(ignoreMissing)));
  }

  /** The folder a job's uploaded files are kept in until it finishes. */
  importDir(jobId: string): string {
    return join(this.root, IMPORT_DIR, jobId);
  }
}

/** The thumbnail edge lengths the API makes. */
export const THUMBNAIL_SIZES = [64, 128, 256] as const;

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
