import { httpError } from '@berth/service-kit';
import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { closeIfBodyFollows } from './auth.ts';
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

  function limitRate(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    const hit = store.hit(normalizeIP(request.ip));
    const reset = Math.ceil(hit.ttl / 1000);
    const exceeded = hit.current > max;
    reply.header('ratelimit-policy', policy);
    reply.header('ratelimit', `"${POLICY}";r=${exceeded ? 0 : max - hit.current};t=${reset}`);
    if (!exceeded) {
      done();
      return;
    }
    reply.header('retry-after', String(reset));
    closeIfBodyFollows(request, reply);
    done(
      httpError(
        429,
        'RATE_LIMITED',
        `Too many requests from "${request.ip}": the limit is ${max} per ${windowSeconds} s; retry in ${reset} s`,
      ),
    );
  }

  return {
    store,
    limit(scope) {
      scope.addHook('onRequest', limitRate);
    },
  };
}
