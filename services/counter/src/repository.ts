import { dependencyUnavailable } from '@berth/service-kit';
import type { Redis } from 'ioredis';

/** The Docker Compose sample's key, kept as is so existing data carries over. */
export const HITS_KEY = 'hits';

const counterKey = (name: string) => `counter:${name}`;

/** Every Redis failure becomes one 503 that names Redis; the cause is logged, not shown. */
async function guarded<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw Object.assign(dependencyUnavailable('Redis'), { cause: err });
  }
}

/** Counter storage: one Redis string per counter, changed only with atomic commands. */
export function counterRepository(redis: Redis) {
  return {
    /** Counts one more visit to the sample page and returns the new total. */
    hit: () => guarded(() => redis.incr(HITS_KEY)),
    /** The counter's value; 0 for a counter that was never used. */
    get: (name: string) => guarded(async () => Number((await redis.get(counterKey(name))) ?? 0)),
    /** Adds `by` and returns the new value. */
    increment: (name: string, by: number) => guarded(() => redis.incrby(counterKey(name), by)),
    /** Removes the counter; true when it existed. */
    remove: (name: string) => guarded(async () => (await redis.del(counterKey(name))) === 1),
  };
}

/** The counter store as routes see it. */
export type CounterRepository = ReturnType<typeof counterRepository>;
