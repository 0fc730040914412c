import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '@berth/service-kit';
import { Redis } from 'ioredis';
import { buildApp } from '../src/app.ts';
import { type CounterConfig, CounterEnv } from '../src/config.ts';
import { createRedis } from '../src/redis.ts';

/** A key prefix no other test run uses, so parallel runs against one Redis cannot collide. */
export function testPrefix(): string {
  return `test:${randomUUID()}:`;
}

/** The Redis the tests use: TEST_REDIS_URL, or the local default. */
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The counter's config for a test: quiet logs, the given prefix and Redis (the test Redis unless given). */
export function testConfig(env: Record<string, string>): CounterConfig {
  return loadConfig(CounterEnv, { LOG_LEVEL: 'silent', REDIS_URL, ...env });
}

/** Resolves once the client is connected; the counter answers 503 until then, by design. */
export async function whenReady(redis: Redis, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return;
  await once(redis, 'ready', { signal: AbortSignal.timeout(timeoutMs) });
}

/** A counter app on its own Redis client, the way main.ts builds it. */
export function counterApp(env: Record<string, string>) {
  const config = testConfig(env);
  const redis = createRedis(config);
  // Connection errors are expected in fault tests; without a listener ioredis prints each one.
  redis.on('error', () => {});
  return { app: buildApp(config, { redis }), redis, config };
}

/** A client without a key prefix, for looking at what the counter stored and cleaning up after it. */
export function plainRedis(url = REDIS_URL): Redis {
  return new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
}

/** Deletes every key under the prefix. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Calls probe until it returns true, failing after timeoutMs. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await probe()) return performance.now() - started;
    await sleep(50);
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

/** Runs fn and returns its result with how long it took. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - started };
}
