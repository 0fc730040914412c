import { httpError } from '@berth/service-kit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { CircuitBreaker } from '../breaker.ts';
import type { GatewayConfig, Upstream } from '../config.ts';
import type { StreamSlots } from '../event-streams.ts';
import { createForwarder } from '../forward.ts';
import type { BodyLimit } from '../limits.ts';

const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];

/** What the proxy routes are wrapped in: per-scope guards (rate limit, auth) and per-upstream resilience. */
export interface ProxyOptions {
  /** Adds the hooks every forwarded request passes first; called once per upstream scope. */
  guard(scope: FastifyInstance): void;
  breakerFor(upstream: Upstream): CircuitBreaker | undefined;
  bodyLimit(upstream: Upstream, request: FastifyRequest): BodyLimit;
  /** The places for event streams, shared by every upstream's stream routes. */
  streams: StreamSlots;
}

/** Bodies are not parsed at the gateway: they stream to the upstream untouched. */
function passBodiesThrough(scope: FastifyInstance) {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
}

/** Registers every upstream's routes, each in its own scope; pools are closed with the app. */
export function proxyRoutes(app: FastifyInstance, list: Upstream[], config: GatewayConfig, options: ProxyOptions) {
  for (const upstream of list) {
    app.register(async (scope) => {
      passBodiesThrough(scope);
      options.guard(scope);
      if (!upstream.url) {
        const notDeployed = async () => {
          throw httpError(
            503,
            'SERVICE_NOT_DEPLOYED',
            `The ${upstream.name} service is not deployed here; set ${upstream.env}`,
          );
        };
        for (const url of upstream.routes) scope.route({ method: METHODS, url, handler: notDeployed });
        return;
      }
      const breaker = options.breakerFor(upstream);
      const { pool, handler } = createForwarder(upstream, config, { breaker, bodyLimit: options.bodyLimit });
      for (const url of upstream.routes) scope.route({ method: METHODS, url, handler });
      scope.addHook('onClose', async () => pool.close());
      if (upstream.streams.length === 0) return;
      // a stream route's GET goes through its own pool; its other methods are ordinary requests
      const streams = createForwarder(upstream, config, {
        breaker,
        bodyLimit: options.bodyLimit,
        streams: options.streams,
      });
      for (const url of upstream.streams) {
        scope.route({ method: 'GET', url, handler: streams.handler, exposeHeadRoute: false });
        scope.route({ method: METHODS.filter((m) => m !== 'GET'), url, handler });
      }
      // open streams end with the gateway: destroy rather than wait for them
      scope.addHook('onClose', async () => streams.pool.destroy());
    });
  }
}
