import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** A key prefix no other run shares, so the benchmark never touches anyone else's keys. */
export function runKeyPrefix(): string {
  return `bench:${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key under prefix and returns how many there were. */
export async function removeKeys(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 });
  // failures reach the caller through connect() and the commands; the event would only repeat them
  redis.on('error', () => {});
  try {
    await redis.connect();
    let removed = 0;
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 })) {
      if ((keys as string[]).length > 0) removed += await redis.unlink(...(keys as string[]));
    }
    return removed;
  } finally {
    redis.disconnect();
  }
}
