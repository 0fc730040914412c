interface Waiter<R> {
  resolve: (value: R | undefined) => void;
  reject: (err: unknown) => void;
}

interface Group<A, R> {
  arg: A;
  waiters: Waiter<R>[];
}

/** Runs one batch: `count` independent answers for the same argument, in order (missing ones undefined). */
export type BatchRun<A, R> = (arg: A, count: number) => Promise<(R | undefined)[]>;

/**
 * Gathers calls with the same key that arrive in one turn of the event loop and answers them with
 * one batch, run once that turn's I/O is handled. Every call in a batch arrived before the batch
 * started, so each sees the data as fresh as a call of its own would; under load, one statement
 * then serves many requests instead of one round trip each.
 */
export class Batcher<A, R> {
  readonly #run: BatchRun<A, R>;
  readonly #max: number;
  #groups = new Map<string, Group<A, R>>();
  #scheduled = false;

  constructor(run: BatchRun<A, R>, max = 100) {
    this.#run = run;
    this.#max = max;
  }

  /** One answer for arg; calls with the same key in the same turn share a batch. */
  add(key: string, arg: A): Promise<R | undefined> {
    return new Promise((resolve, reject) => {
      let group = this.#groups.get(key);
      if (!group) {
        group = { arg, waiters: [] };
        this.#groups.set(key, group);
      }
      group.waiters.push({ resolve, reject });
      if (group.waiters.length >= this.#max) {
        this.#groups.delete(key);
        this.#start(group);
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush() {
    this.#scheduled = false;
    const groups = [...this.#groups.values()];
    this.#groups.clear();
    for (const group of groups) this.#start(group);
  }

  #start(group: Group<A, R>) {
    const { waiters } = group;
    this.#run(group.arg, waiters.length).then(
      (results) => {
        for (let i = 0; i < waiters.length; i++) waiters[i]?.resolve(results[i]);
      },
      (err: unknown) => {
        for (const waiter of waiters) waiter.reject(err);
      },
    );
  }
}
