import type { Redis } from 'ioredis';

/** How long a new store waits for its first connection before it reports Redis as unavailable. */
const FIRST_CONNECT_GRACE_MS = 3000;

/** One client's count in the current window. */
interface Entry {
  key: string;
  /** Start of the window (ms since the epoch) the counts belong to. */
  window: number;
  /** The count over every gateway, as Redis last reported it. */
  counted: number;
  /** Hits not yet sent to Redis. */
  pending: number;
  /** Hits in the batch on its way to Redis. */
  sending: number;
  /** The Redis key has its expiry for this window. */
  expires: boolean;
  /** Already in the next batch. */
  queued: boolean;
}

/** The count after a hit and how long until the window ends. */
export interface Hit {
  current: number;
  /** Milliseconds until the window resets. */
  ttl: number;
}

/** How the store counts and whom it tells when Redis comes and goes. */
export interface StoreOptions {
  /** Without one the store counts for this process only (tests, a single gateway). */
  redis?: Redis;
  prefix: string;
  windowMs: number;
  syncMs: number;
  /** Called once when batches start failing: the limits are now counted by this process alone. */
  onUnavailable?: (err: Error) => void;
  /** Called once when a batch succeeds again. */
  onAvailable?: () => void;
}

/**
 * Per-client request counts in fixed windows aligned to the clock, counted in memory at once and
 * in Redis in batches: every syncMs each client's new hits go out as one INCRBY (pipelined), and
 * Redis's answer, the count over every gateway replica, replaces the local view. A request never
 * waits for Redis. With one gateway the count is exact; with several, a client can exceed the
 * limit by at most what the other replicas let through in one sync interval. While Redis is down
 * the counts stay local (each replica limits on its own) and are sent when it returns.
 *
 * It implements @fastify/rate-limit's store interface (incr, child), so it can back that plugin's
 * route-level limits too; the gateway's own check calls count() directly.
 */
export class BatchedRedisStore {
  readonly #entries = new Map<string, Entry>();
  #batch: Entry[] = [];
  readonly #options: StoreOptions;
  readonly #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #down = false;
  #sweptWindow = 0;
  readonly #since = Date.now();

  constructor(options: StoreOptions) {
    this.#options = options;
    if (options.redis) {
      this.#timer = setInterval(() => void this.flush(), options.syncMs);
      this.#timer.unref();
    }
  }

  /** Counts one request for key and returns the count so far in this window (no allocation: it runs per request). */
  count(key: string, now: number): number {
    const windowMs = this.#options.windowMs;
    const window = now - (now % windowMs);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = { key, window, counted: 0, pending: 0, sending: 0, expires: false, queued: false };
      this.#entries.set(key, entry);
    } else if (entry.window !== window) {
      entry.window = window;
      entry.counted = 0;
      entry.pending = 0;
      entry.sending = 0;
      entry.expires = false;
    }
    entry.pending++;
    if (!entry.queued && this.#options.redis) {
      entry.queued = true;
      this.#batch.push(entry);
    }
    return entry.counted + entry.sending + entry.pending;
  }

  /** Milliseconds from now until the current window ends and every count starts again. */
  resetInMs(now: number): number {
    const windowMs = this.#options.windowMs;
    return windowMs - (now % windowMs);
  }

  /** Counts one request for key: the count so far and the time until the window resets. */
  hit(key: string, now = Date.now()): Hit {
    return { current: this.count(key, now), ttl: this.resetInMs(now) };
  }

  /** @fastify/rate-limit's store interface. */
  incr(key: string, callback: (err: Error | null, result: Hit) => void): void {
    callback(null, this.hit(key));
  }

  /** Route-specific settings are not used: every route shares the one count per client. */
  child(): this {
    return this;
  }

  /** Clients currently tracked in memory. */
  get size(): number {
    return this.#entries.size;
  }

  /** Sends the pending hits to Redis now; resolves when the batch is answered (or failed). */
  flush(): Promise<void> {
    this.#flushing ??= this.#send().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #send(): Promise<void> {
    const redis = this.#options.redis;
    const now = Date.now();
    this.#sweep(now);
    const batch = this.#batch;
    if (!redis || batch.length === 0) return;
    if (redis.status !== 'ready') {
      // no point sending: the hits stay pending; an outage is reported once the first connection had its chance
      if (Date.now() - this.#since > FIRST_CONNECT_GRACE_MS) this.#unavailable(new Error(`Redis is ${redis.status}`));
      return;
    }
    this.#batch = [];
    const { prefix, windowMs } = this.#options;
    const pipeline = redis.pipeline();
    const sent: { entry: Entry; window: number; count: number; at: number; expiry: boolean }[] = [];
    let commands = 0;
    for (const entry of batch) {
      entry.queued = false;
      if (entry.pending === 0) continue;
      const redisKey = `${prefix}${entry.window / windowMs}:${entry.key}`;
      pipeline.incrby(redisKey, entry.pending);
      const expiry = !entry.expires;
      // keys die a little after their window; every replica sets the same absolute time
      if (expiry) pipeline.pexpireat(redisKey, entry.window + windowMs + 1000);
      sent.push({ entry, window: entry.window, count: entry.pending, at: commands, expiry });
      commands += expiry ? 2 : 1;
      entry.sending = entry.pending;
      entry.pending = 0;
    }
    if (sent.length === 0) return;
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
      if (!results) throw new Error('Redis discarded the batch');
    } catch (err) {
      this.#failed(sent, err as Error);
      return;
    }
    let failure: Error | undefined;
    for (const { entry, window, at, expiry } of sent) {
      if (entry.window !== window) continue; // a new window began meanwhile; that batch counted the old one
      const [err, value] = results[at] ?? [new Error('no answer'), null];
      if (err) {
        failure = err;
        this.#requeue(entry);
        continue;
      }
      entry.counted = Number(value);
      entry.sending = 0;
      if (expiry) entry.expires = true;
    }
    if (failure) this.#unavailable(failure);
    else this.#available();
  }

  #failed(sent: { entry: Entry; window: number }[], err: Error) {
    for (const { entry, window } of sent) if (entry.window === window) this.#requeue(entry);
    this.#unavailable(err);
  }

  /** Puts hits that did not reach Redis back with the pending ones, to go in the next batch. */
  #requeue(entry: Entry) {
    entry.pending += entry.sending;
    entry.sending = 0;
    if (!entry.queued) {
      entry.queued = true;
      this.#batch.push(entry);
    }
  }

  #unavailable(err: Error) {
    if (this.#down) return;
    this.#down = true;
    this.#options.onUnavailable?.(err);
  }

  #available() {
    if (!this.#down) return;
    this.#down = false;
    this.#options.onAvailable?.();
  }

  /** Once per window, forgets clients whose window has passed, so memory follows the active clients. */
  #sweep(now: number) {
    const window = now - (now % this.#options.windowMs);
    if (window === this.#sweptWindow) return;
    this.#sweptWindow = window;
    for (const [key, entry] of this.#entries) {
      if (entry.window < window && !entry.queued && entry.sending === 0) this.#entries.delete(key);
    }
  }

  /** Stops the timer and sends what is pending. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
