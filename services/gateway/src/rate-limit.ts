import { type HttpError, httpError } from '@berth/service-kit';
import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig } from './config.ts';
import { closeIfBodyFollows } from './limits.ts';
import { BatchedRedisStore, type StoreOptions } from './rate-limit-store.ts';

/** The name the IETF RateLimit headers give the gateway's one policy. */
const POLICY = 'per-client';

/** What the gateway needs to rate-limit its routes. */
export interface RateLimiting {
  store: BatchedRedisStore;
  /** Counts the request and sets the rate-limit headers; returns the 429 when the client is over its limit. */
  check(request: FastifyRequest, reply: FastifyReply): HttpError | undefined;
}

/**
 * Per-client rate limiting: every forwarded request counts against its client's budget of
 * RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_MS, kept by the batched Redis store. The client is its IP
 * address as @fastify/rate-limit keys it (IPv6 by /64), taken from X-Forwarded-For only when the
 * peer is a trusted proxy. Answers carry the IETF RateLimit and RateLimit-Policy headers; past
 * the limit the answer is 429 with Retry-After. The check runs synchronously: the plugin's own
 * request path awaits the store through promises, which cost more per request than the count.
 */
export function createRateLimiting(
  app: FastifyInstance,
  config: GatewayConfig,
  storeOptions: Omit<StoreOptions, 'prefix' | 'windowMs' | 'syncMs'>,
): RateLimiting {
  const max = config.RATE_LIMIT_MAX;
  const store = new BatchedRedisStore({
    ...storeOptions,
    prefix: config.RATE_LIMIT_KEY_PREFIX,
    windowMs: config.RATE_LIMIT_WINDOW_MS,
    syncMs: config.RATE_LIMIT_SYNC_MS,
  });
  app.addHook('onClose', () => store.close());

  const windowSeconds = Math.ceil(config.RATE_LIMIT_WINDOW_MS / 1000);
  const policy = `"${POLICY}";q=${max};w=${windowSeconds}`;

  return {
    store,
    check(request, reply) {
      const ip = request.ip;
      // IPv4 addresses are their own key; only IPv6 needs normalising (to its /64)
      const now = Date.now();
      const current = store.count(ip.includes(':') ? normalizeIP(ip) : ip, now);
      const reset = Math.ceil(store.resetInMs(now) / 1000);
      const exceeded = current > max;
      reply.header('ratelimit-policy', policy);
      reply.header('ratelimit', `"${POLICY}";r=${exceeded ? 0 : max - current};t=${reset}`);
      if (!exceeded) return undefined;
      reply.header('retry-after', String(reset));
      closeIfBodyFollows(request, reply);
      return httpError(
        429,
        'RATE_LIMITED',
        `Too many requests from "${ip}": the limit is ${max} per ${windowSeconds} s; retry in ${reset} s`,
      );
    },
  };
}
