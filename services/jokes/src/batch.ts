interface Waiter<R> {
  resolve: (value: R | undefined) => void;
  reject: (err: unknown) => void;
}

interface Group<A, R> {
  arg: A;
  waiters: Waiter<R>[];
}

interface KeyState<A, R> {
  /** Calls waiting for the next run. */
  next: Group<A, R> | undefined;
  /** Runs started and not yet settled. */
  running: number;
  scheduled: boolean;
}

/** Runs one batch: `count` answers for the same argument, in call order (missing ones undefined). */
export type BatchRun<A, R> = (arg: A, count: number) => Promise<(R | undefined)[]>;

/** How a batcher groups calls. */
export interface BatchOptions {
  /** The most calls one run answers. */
  max?: number;
  /** Runs per key at once; calls beyond that wait and go together in the next run. */
  concurrency?: number;
}

/**
 * Gathers calls with the same key and answers them with one run. Calls are collected until the
 * current turn of the event loop has handled its I/O, and while `concurrency` runs of that key are
 * under way; the next run then takes every call that waited. Each call arrived before the run that
 * answers it started, so it sees data as fresh as a query of its own would. At low load a run
 * answers one call; under load one statement answers many.
 */
export class Batcher<A, R> {
  readonly #run: BatchRun<A, R>;
  readonly #max: number;
  readonly #concurrency: number;
  readonly #keys = new Map<string, KeyState<A, R>>();

  constructor(run: BatchRun<A, R>, options: BatchOptions = {}) {
    this.#run = run;
    this.#max = options.max ?? 100;
    this.#concurrency = options.concurrency ?? 2;
  }

  /** One answer for arg; calls with the same key share runs. */
  add(key: string, arg: A): Promise<R | undefined> {
    return new Promise((resolve, reject) => {
      let state = this.#keys.get(key);
      if (!state) {
        state = { next: undefined, running: 0, scheduled: false };
        this.#keys.set(key, state);
      }
      state.next ??= { arg, waiters: [] };
      state.next.waiters.push({ resolve, reject });
      if (state.running >= this.#concurrency) return;
      if (state.next.waiters.length >= this.#max) this.#start(key, state);
      else if (!state.scheduled) {
        state.scheduled = true;
        const ready = state;
        setImmediate(() => {
          ready.scheduled = false;
          this.#start(key, ready);
          if (!ready.next && ready.running === 0) this.#keys.delete(key);
        });
      }
    });
  }

  /** Starts runs for the waiting calls, up to max calls each, while the key has room. */
  #start(key: string, state: KeyState<A, R>) {
    while (state.next && state.running < this.#concurrency) {
      const group = state.next;
      const waiters = group.waiters.splice(0, this.#max);
      if (group.waiters.length === 0) state.next = undefined;
      state.running++;
      this.#run(group.arg, waiters.length).then(
        (results) => {
          this.#settle(key, state);
          for (let i = 0; i < waiters.length; i++) waiters[i]?.resolve(results[i]);
        },
        (err: unknown) => {
          this.#settle(key, state);
          for (const waiter of waiters) waiter.reject(err);
        },
      );
    }
  }

  #settle(key: string, state: KeyState<A, R>) {
    state.running--;
    // calls that waited behind the limit go at once: they already sat out a turn
    if (state.next) this.#start(key, state);
    else if (state.running === 0 && !state.scheduled) this.#keys.delete(key);
  }
}
