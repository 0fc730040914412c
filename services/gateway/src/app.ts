import { ConfigError, createService, type HttpError } from '@berth/service-kit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { requireScope, tokenCheck } from './auth.ts';
import { CircuitBreaker as Breaker, type CircuitBreaker } from './breaker.ts';
import { type GatewayConfig, type Upstream, upstreams } from './config.ts';
import { allowOrigins, parseOrigins } from './cors.ts';
import { StreamSlots } from './event-streams.ts';
import {
  bodyLimits,
  checkTimeouts,
  clientErrorHandler,
  frameworkErrorHandler,
  requestTargetError,
  serverOptions,
} from './limits.ts';
import { type GatewayMetrics, gatewayMetrics } from './metrics.ts';
import { OpenApiCatalog, type OpenApiDocument } from './openapi.ts';
import { createRateLimiting } from './rate-limit.ts';
import { upstreamChecks } from './readiness.ts';
import { docsRoutes } from './routes/docs.ts';
import { proxyRoutes } from './routes/proxy.ts';
import { uiRoutes } from './routes/ui.ts';
import { securityHeaders } from './security-headers.ts';
import { TokenChecker } from './tokens.ts';
import { broadEntries, parseTrustedProxies } from './trusted-proxies.ts';

/** What the gateway is given rather than builds: secrets and shared clients, closed with the app. */
export interface GatewayDeps {
  /** The tokens writes are checked against; at least one when AUTH_ENABLED is on. */
  tokens?: string[];
  /** Where rate-limit counts are shared between replicas; without it each process counts alone. */
  redis?: Redis;
}

/** The gateway's own routes in its document; everything else it serves is forwarded or the docs pages. */
const GATEWAY_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);

/** A check a forwarded request must pass: the error to answer with, or nothing. */
type Check = (request: FastifyRequest, reply: FastifyReply) => HttpError | undefined;

/** One onRequest hook for the checks that are on (fewer hooks, less per request), or none. */
function guardHook(checks: Check[]) {
  const [first, second] = checks;
  if (!first) return undefined;
  if (!second) {
    return function guard(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
      done(first(request, reply));
    };
  }
  return function guard(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    done(first(request, reply) ?? second(request, reply));
  };
}

/** A breaker per upstream that logs when its circuit opens and closes; none when CIRCUIT_FAILURES is 0. */
function circuitBreakers(app: FastifyInstance, config: GatewayConfig, metrics: GatewayMetrics) {
  return (upstream: Upstream): CircuitBreaker | undefined => {
    if (config.CIRCUIT_FAILURES === 0) return undefined;
    const breaker = new Breaker({
      failures: config.CIRCUIT_FAILURES,
      cooldownMs: config.CIRCUIT_COOLDOWN_MS,
      onChange(state, b) {
        metrics.circuit(upstream.name, state);
        const where = { upstream: upstream.name, state };
        if (state === 'open') {
          app.log.warn({ ...where, failures: b.failures }, `circuit to ${upstream.name} opened; answering 503 at once`);
        } else app.log.info(where, `circuit to ${upstream.name} ${state}`);
      },
    });
    return breaker;
  };
}

/**
 * Builds the gateway: one URL in front of every service; /readyz aggregates theirs. Every answer
 * carries the security headers; forwarded requests pass the rate limit, then the token check for
 * writes, then the body limits and the upstream's circuit breaker. Settings that contradict each
 * other throw a ConfigError naming the variable.
 */
export function buildApp(config: GatewayConfig, deps: GatewayDeps = {}) {
  checkTimeouts(config);
  const trustProxy = parseTrustedProxies(config.TRUSTED_PROXIES);
  const origins = parseOrigins(config.CORS_ORIGINS);
  const checker = config.AUTH_ENABLED ? new TokenChecker(deps.tokens ?? []) : undefined;
  const list = upstreams(config);
  let headersForRawAnswers = (): Record<string, string> => ({});
  const maxUrlBytes = config.MAX_URL_BYTES;
  const app = createService({
    name: 'gateway',
    logLevel: config.LOG_LEVEL,
    readiness: upstreamChecks(list, config.READY_TIMEOUT_MS),
    // the upstreams' own checks have READY_TIMEOUT_MS; give the aggregate a little more
    readinessTimeoutMs: config.READY_TIMEOUT_MS + 250,
    fastify: {
      ...serverOptions(config),
      trustProxy,
      clientErrorHandler: clientErrorHandler(config, () => headersForRawAnswers()),
      frameworkErrors: frameworkErrorHandler(() => headersForRawAnswers()),
    },
    openapi: {
      title: 'berth gateway',
      description: 'The gateway’s own routes',
      // the forwarded paths are described by the services' own documents
      include: (url) => GATEWAY_ROUTES.has(url),
    },
  });
  const streams = new StreamSlots(config.EVENT_STREAMS_MAX, config.EVENT_STREAMS_PER_CLIENT);
  const metrics = gatewayMetrics(
    app.metrics,
    list.filter((u) => u.url).map((u) => u.name),
    () => streams.open,
  );
  const broad = broadEntries(trustProxy);
  if (broad.length > 0) {
    app.log.warn(
      { trustedProxies: broad },
      `TRUSTED_PROXIES trusts the ranges "${broad.join('", "')}": any host in them can set X-Forwarded-For and so pick the address it is rate-limited and logged as; list only your proxies' own addresses`,
    );
  }
  const headers = config.SECURITY_HEADERS_ENABLED ? securityHeaders(app) : undefined;
  if (headers) headersForRawAnswers = headers.read;
  app.addHook('onRequest', function firstChecks(request, reply, done) {
    headers?.apply(reply);
    done(requestTargetError(request.url, maxUrlBytes));
  });
  allowOrigins(app, origins);

  const rateLimiting = config.RATE_LIMIT_ENABLED
    ? createRateLimiting(app, config, {
        redis: deps.redis,
        onUnavailable: (err) =>
          app.log.warn(
            { err: err.message },
            'rate-limit counts cannot reach Redis; each gateway limits on its own until it is back',
          ),
        onAvailable: () => app.log.info('rate-limit counts reach Redis again'),
      })
    : undefined;
  if (deps.redis) {
    const redis = deps.redis;
    redis.on('error', (err) => app.log.debug({ err: err.message }, 'redis connection problem'));
    // after the store's last flush (registered first, so it runs first)
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  }

  // the rate limit first, so token guesses are limited too
  const checks: Check[] = [];
  if (rateLimiting) {
    const { check } = rateLimiting;
    checks.push((request, reply) => {
      const refused = check(request, reply);
      if (refused) metrics.rateLimited();
      return refused;
    });
  }
  const [limit] = checks;
  if (limit) {
    // /readyz asks every upstream, so it counts against the client's budget like a forwarded request
    app.addHook('onRequest', function limitReadiness(request, reply, done) {
      done(request.routeOptions.url === '/readyz' ? limit(request, reply) : undefined);
    });
  }
  if (checker) {
    checks.push(tokenCheck(checker, { reads: config.READS_REQUIRE_TOKEN }));
    if (config.METRICS_REQUIRE_TOKEN) {
      app.addHook('onRequest', function metricsToken(request, reply, done) {
        done(request.routeOptions.url === '/metrics' ? requireScope(checker, request, reply, 'admin') : undefined);
      });
    }
  } else if (config.READS_REQUIRE_TOKEN || config.METRICS_REQUIRE_TOKEN) {
    throw new ConfigError('READS_REQUIRE_TOKEN and METRICS_REQUIRE_TOKEN need AUTH_ENABLED on');
  }
  const guard = guardHook(checks);
  proxyRoutes(app, list, config, {
    guard(scope) {
      if (guard) scope.addHook('onRequest', guard);
    },
    breakerFor: circuitBreakers(app, config, metrics),
    bodyLimit: bodyLimits(config),
    streams,
  });
  uiRoutes(app, config.UI_DIR);

  const catalog = new OpenApiCatalog(list, {
    own: () => app.swagger() as unknown as OpenApiDocument,
    timeoutMs: config.READY_TIMEOUT_MS,
    refreshMs: config.OPENAPI_REFRESH_MS,
    onError: (name, err) => app.log.debug({ upstream: name, err: err.message }, 'OpenAPI document not fetched'),
  });
  docsRoutes(app, catalog);
  // once listening (a built app that only answers inject() fetches on the first ask)
  app.addHook('onListen', async () => catalog.start());
  app.addHook('onClose', async () => catalog.stop());
  return app;
}
