// Runs in the file writers' worker threads (see file-writers.ts): a whole batch of file system
// steps per task, as plain synchronous calls, so a batch costs one hand-off between threads
// instead of one per system call.
import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** A file to create under a new (temporary) name and flush to disk. */
export interface FileWrite {
  path: string;
  bytes: Uint8Array;
}

/** A rename into a final place. */
export interface FileMove {
  from: string;
  to: string;
}

/** One task: writes, then renames, then folder syncs; any part may be empty. */
export interface FileTask {
  writes?: FileWrite[];
  moves?: FileMove[];
  /** Folders fsynced after the renames, so the renames survive a crash. */
  syncDirs?: string[];
}

/** A failure as it crosses back to the main thread: the message and the errno code, if any. */
export interface FileTaskFailure {
  message: string;
  code?: string;
}

/** What a task did: undefined when everything succeeded, else why it stopped. */
export type FileTaskResult = FileTaskFailure | undefined;

// a step that creates a name in a folder not made yet (ENOENT) makes the folder and tries once more;
// most folders exist after the first few thousand images, so asking first would be a wasted call
function inDir<T>(path: string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true });
    return step();
  }
}

function writeFlushed(file: FileWrite): void {
  const fd = inDir(file.path, () => openSync(file.path, 'wx'));
  try {
    let at = 0;
    while (at < file.bytes.byteLength) at += writeSync(fd, file.bytes, at, file.bytes.byteLength - at);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs a task. A write that fails removes the temp files this task wrote, so a failed task leaves
 * no new temp file behind; renames done before a failure stay done (the caller knows which
 * targets it asked for and reclaims them).
 */
export default function run(task: FileTask): FileTaskResult {
  const written: string[] = [];
  try {
    for (const file of task.writes ?? []) {
      try {
        writeFlushed(file);
      } catch (err) {
        // opened but not completed: the partial file goes too
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') written.push(file.path);
        throw err;
      }
      written.push(file.path);
    }
  } catch (err) {
    for (const path of written) {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
    return failure(err);
  }
  try {
    for (const move of task.moves ?? []) inDir(move.to, () => renameSync(move.from, move.to));
    for (const dir of new Set(task.syncDirs ?? [])) syncDir(dir);
  } catch (err) {
    return failure(err);
  }
  return undefined;
}

function failure(err: unknown): FileTaskFailure {
  const { message, code } = err as NodeJS.ErrnoException;
  return code === undefined ? { message } : { message, code };
}
