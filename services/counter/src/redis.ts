import { backoffDelay } from '@berth/service-kit';
import { Redis } from 'ioredis';
import type { CounterConfig } from './config.ts';

/**
 * A Redis client that never queues commands while disconnected (callers get a fast error and answer
 * 503), gives up on a command after REDIS_COMMAND_TIMEOUT_MS, and reconnects forever with backoff so
 * the service recovers by itself when Redis returns.
 */
export function createRedis(config: CounterConfig): Redis {
  return new Redis(config.REDIS_URL, {
    keyPrefix: config.REDIS_KEY_PREFIX,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    retryStrategy: (attempt) => backoffDelay(attempt, 50, 2000),
    lazyConnect: false,
  });
}
