import { createHash, randomBytes } from 'node:crypto';
import {
  close,
  closeSync,
  createWriteStream,
  fdatasync,
  fsync,
  open as openFd,
  openSync,
  statSync,
  write,
} from 'node:fs';
import { type FileHandle, mkdir, open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { forEachLimit } from '../concurrency.ts';

/** File system steps in flight at once for a batch, when the caller does not say. */
export const DEFAULT_CONCURRENCY = 64;

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

const fsOpen = promisify(openFd);
const fsClose = promisify(close);
const fsFsync = promisify(fsync);
const fsDatasync = promisify(fdatasync);
const fsWrite = promisify(write);

async function writeAll(fd: number, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) {
    const { bytesWritten } = await fsWrite(fd, bytes, at, bytes.byteLength - at, null);
    at += bytesWritten;
  }
}

/** This process's part of temp names: random, so replicas sharing a volume never pick the same one. */
const TEMP_PROCESS = randomBytes(9).toString('base64url');

/**
 * The writer tag in this process's temp names (`.tmp-<tag>-<n>`). The import runner uses it as its
 * owner, so whoever finds a job whose process died knows which temp files that process left.
 */
export const TEMP_WRITER = TEMP_PROCESS;
let tempCount = 0;

/** A name no other temp file has: the process's random part and a counter, no entropy per file. */
function tempName(): string {
  return `${TEMP_PREFIX}${TEMP_PROCESS}-${(tempCount++).toString(36)}`;
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
  /** The root as a prefix for string-built paths: "" for the file system's root. */
  readonly #prefix: string;
  readonly #concurrency: number;

  /** `concurrency`: files a batch writes, renames or syncs at once (IMPORT_CONCURRENCY). */
  constructor(root: string, options: { concurrency?: number } = {}) {
    this.root = resolve(root);
    this.#prefix = this.root === sep ? '' : this.root;
    this.#concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  }

  /** Creates the root and the temp folder; call once at start-up. */
  async init(): Promise<void> {
    await mkdir(join(this.root, TEMP_DIR), { recursive: true });
    await mkdir(join(this.root, IMPORT_DIR), { recursive: true });
  }

  /** Where the file with this hash lives. */
  path(sha256: string): string {
    return `${this.folder(sha256)}${sep}${sha256}`;
  }

  /**
   * The folder the file with this hash lives in (`<root>/ab/cd`). Built as a string, not with
   * path.join: the parts are known to be clean, and this runs several times per imported image.
   */
  folder(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`"${sha256}" is not a SHA-256 in hex`);
    return `${this.#prefix}${sep}${sha256.slice(0, 2)}${sep}${sha256.slice(2, 4)}`;
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

  /**
   * Runs a step that creates a name in `dir`; when the folder is not there yet (ENOENT) it is
   * made and the step tried once more. Most folders exist after the first few thousand images,
   * so asking first would cost a system call per file for nothing.
   */
  async #inDir<T>(dir: string, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(dir, { recursive: true });
      return step();
    }
  }

  /** Writes bytes whose hash is known to a temp file next to their final place, fsynced. */
  async stageBytes(bytes: Uint8Array, sha256: string): Promise<Staged> {
    const dir = this.folder(sha256);
    const path = `${dir}${sep}${tempName()}`;
    // plain descriptors rather than FileHandle objects: this runs once per imported image
    const fd = await this.#inDir(dir, () => fsOpen(path, 'wx'));
    try {
      await writeAll(fd, bytes);
      await fsDatasync(fd);
    } catch (err) {
      await fsClose(fd).catch(() => {});
      await unlink(path).catch(ignoreMissing);
      throw err;
    }
    // closing a flushed file does no I/O: done here rather than as one more thread-pool round trip
    closeSync(fd);
    return { path, sha256, bytes: bytes.byteLength };
  }

  /**
   * stageBytes for many files, `concurrency` at a time. All or nothing: when one write fails, the
   * temp files the others wrote are removed before the error is thrown.
   */
  async stageMany(files: Array<{ bytes: Uint8Array; sha256: string }>): Promise<Staged[]> {
    const staged: Staged[] = [];
    try {
      await this.#each(files, async (file) => {
        staged.push(await this.stageBytes(file.bytes, file.sha256));
      });
    } catch (err) {
      await this.#each(staged, (file) => unlink(file.path).catch(ignoreMissing)).catch(() => {});
      throw err;
    }
    return staged;
  }

  /**
   * Renames staged files to their final names, then syncs their folders, so the renames are
   * durable when it resolves. A failure can leave some renamed and others not: callers reclaim
   * every file they asked for (a file some row uses is kept) and discard the staged ones.
   */
  async placeSynced(files: Staged[]): Promise<void> {
    const dirs = new Set<string>();
    await this.#each(files, async (file) => {
      const dir = this.folder(file.sha256);
      const target = `${dir}${sep}${file.sha256}`;
      await this.#inDir(dir, () => rename(file.path, target));
      file.placed = true;
      dirs.add(dir);
    });
    await this.syncDirs(dirs);
  }

  /**
   * Writes files that may be made again (thumbnails) under their final names: each to a temp file
   * beside it, flushed, then renamed over, so no reader meets half a file.
   */
  async putFiles(files: Array<{ path: string; bytes: Uint8Array }>): Promise<void> {
    await this.#each(files, async (file) => {
      const dir = dirname(file.path);
      const temp = join(dir, tempName());
      try {
        await this.#inDir(dir, () => writeFile(temp, file.bytes, { flag: 'wx', flush: true }));
        await rename(temp, file.path);
      } catch (err) {
        await unlink(temp).catch(ignoreMissing);
        throw err;
      }
    });
  }

  /**
   * fsyncs folders so the renames in them survive a crash. Only the fsync goes to the thread
   * pool: opening and closing a folder that was just renamed into finds it cached and does no I/O.
   */
  async syncDirs(dirs: Iterable<string>): Promise<void> {
    await this.#each(new Set(dirs), async (dir) => {
      const fd = openSync(dir, 'r');
      try {
        await fsFsync(fd);
      } finally {
        closeSync(fd);
      }
    });
  }

  #each<T>(items: Iterable<T>, step: (item: T) => Promise<unknown>): Promise<void> {
    return forEachLimit(items, this.#concurrency, async (item) => {
      await step(item);
    });
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

  /**
   * has() without the thread pool, for a file this process has just placed or looked up: its
   * folder entry is cached, so the answer costs no I/O.
   */
  hasSeen(sha256: string): boolean {
    return statSync(this.path(sha256), { throwIfNoEntry: false }) !== undefined;
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
