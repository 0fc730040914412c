import { httpError } from '@berth/service-kit';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig } from './config.ts';
import { BatchedRedisStore, type StoreOptions } from './rate-limit-store.ts';

/** The name the IETF RateLimit headers give the gateway's one policy. */
const POLICY = 'per-client';

/** What the gateway needs to rate-limit its routes. */
export interface RateLimiting {
  store: BatchedRedisStore;
  /** Registers the onRequest hook that limits a scope's routes; call inside the scope. */
  limit(scope: FastifyInstance): void;
}

/**
 * Registers @fastify/rate-limit on the app with the batched Redis store, keyed per client IP (from
 * X-Forwarded-For only when the peer is a trusted proxy; IPv6 by /64). Routes opt in with limit(),
 * which answers with the IETF RateLimit and RateLimit-Policy headers and a 429 with Retry-After.
 */
export function registerRateLimit(
  app: FastifyInstance,
  config: GatewayConfig,
  storeOptions: Omit<StoreOptions, 'prefix' | 'windowMs' | 'syncMs'>,
): RateLimiting {
  const max = config.RATE_LIMIT_MAX;
  const windowMs = config.RATE_LIMIT_WINDOW_MS;
  const store = new BatchedRedisStore({
    ...storeOptions,
    prefix: config.RATE_LIMIT_KEY_PREFIX,
    windowMs,
    syncMs: config.RATE_LIMIT_SYNC_MS,
  });
  app.register(rateLimit, {
    global: false,
    max,
    timeWindow: windowMs,
    // the plugin builds its store from a class; this one is made above so the app can flush and close it
    store: function sharedStore() {
      return store;
    } as unknown as NonNullable<Parameters<typeof rateLimit>[1]['store']>,
  });
  app.addHook('onClose', () => store.close());

  const windowSeconds = Math.ceil(windowMs / 1000);
  const policy = `"${POLICY}";q=${max};w=${windowSeconds}`;

  return {
    store,
    limit(scope) {
      const limiter = scope.createRateLimit();
      scope.addHook('onRequest', async function limitRate(request: FastifyRequest, reply: FastifyReply) {
        const result = await limiter(request);
        if (result.isAllowed) return;
        const reset = result.ttlInSeconds;
        reply.header('ratelimit-policy', policy);
        reply.header('ratelimit', `"${POLICY}";r=${result.remaining};t=${reset}`);
        if (!result.isExceeded) return;
        reply.header('retry-after', String(reset));
        throw httpError(
          429,
          'RATE_LIMITED',
          `Too many requests from "${request.ip}": the limit is ${max} per ${windowSeconds} s; retry in ${reset} s`,
        );
      });
    },
  };
}
