import { backoffDelay } from '@berth/service-kit';
import { Redis } from 'ioredis';
import type { GatewayConfig } from './config.ts';

/**
 * The Redis client for rate-limit counts: no queue while disconnected (a batch fails at once and
 * its hits stay counted locally), a bound on each batch, and reconnects forever with backoff so
 * shared counting resumes by itself when Redis returns.
 */
export function createRedis(config: GatewayConfig): Redis {
  return new Redis(config.REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    retryStrategy: (attempt) => backoffDelay(attempt, 50, 2000),
    lazyConnect: false,
  });
}
