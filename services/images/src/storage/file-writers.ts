import { Piscina } from 'piscina';
import type { FileTask, FileTaskResult } from './file-tasks.ts';

/**
 * A few worker threads that run the store's file system steps in batches (file-tasks.ts). Each
 * asynchronous fs call costs a hand-off to libuv's pool and back, which on a small virtual
 * machine costs more than the call itself; a thread that makes the same calls synchronously, a
 * batch per task, writes two to three times as many small files per second with a third of the
 * CPU (decision 0097). Threads waiting on a flush are idle, so several run side by side.
 */
export class FileWriters {
  readonly #threads: number;
  #pool: Piscina<FileTask, FileTaskResult> | undefined;

  constructor(threads: number) {
    this.#threads = threads;
  }

  /** How many tasks run at once. */
  get threads(): number {
    return this.#threads;
  }

  /** Runs one task; rejects with an Error carrying the errno code of the step that failed. */
  async run(task: FileTask): Promise<void> {
    // started on first use, so a process that never writes (a test, a reader) starts no threads;
    // piscina unreferences idle threads, so they never keep a process alive
    this.#pool ??= new Piscina({
      filename: new URL('./file-tasks.ts', import.meta.url).href,
      minThreads: this.#threads,
      maxThreads: this.#threads,
      idleTimeout: 60_000,
      // each task is a batch of blocking calls; a second task waiting on a thread could wait long
      concurrentTasksPerWorker: 1,
    });
    const failed = await this.#pool.run(task);
    if (failed) throw Object.assign(new Error(failed.message), failed.code ? { code: failed.code } : {});
  }

  /**
   * Runs `tasks` made from `items` split into at most `threads` parts, all at once; rejects with the
   * first failure after every part has finished, so nothing is still writing when the caller
   * cleans up.
   */
  async runSplit<T>(items: T[], task: (part: T[]) => FileTask): Promise<void> {
    if (items.length === 0) return;
    const size = Math.ceil(items.length / this.#threads);
    const parts: T[][] = [];
    for (let at = 0; at < items.length; at += size) parts.push(items.slice(at, at + size));
    const results = await Promise.allSettled(parts.map((part) => this.run(task(part))));
    const rejected = results.find((result) => result.status === 'rejected');
    if (rejected) throw (rejected as PromiseRejectedResult).reason;
  }

  /** Stops the threads once their tasks are done. */
  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.close();
  }
}
