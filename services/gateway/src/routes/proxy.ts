import { httpError } from '@berth/service-kit';
import proxy from '@fastify/http-proxy';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { GatewayConfig, Upstream } from '../config.ts';

const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const TIMED_OUT = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Turns a transport failure into an answer that names the upstream and what happened. */
export function upstreamFailure(upstream: Upstream, error: FastifyError, timeoutMs: number) {
  const who = `The ${upstream.name} service`;
  const cause = (error.cause as { code?: string } | undefined)?.code ?? '';
  if (error.statusCode === 504 || TIMED_OUT.has(cause)) {
    return httpError(504, 'UPSTREAM_TIMEOUT', `${who} did not answer within ${timeoutMs} ms`);
  }
  if (error.statusCode === 503 || UNREACHABLE.has(cause)) {
    return httpError(503, 'UPSTREAM_UNAVAILABLE', `${who} is unavailable; retry in a few seconds`);
  }
  return httpError(502, 'UPSTREAM_ERROR', `${who} closed the connection without a proper answer`);
}

/**
 * Forwards an upstream's paths as they are over a keep-alive undici pool of its own. The request id is
 * passed on so the upstream logs under the same id.
 */
function forward(app: FastifyInstance, upstream: Upstream, config: GatewayConfig) {
  app.register(proxy, {
    upstream: upstream.url,
    prefix: '/',
    rewritePrefix: '/',
    routes: upstream.routes,
    httpMethods: METHODS,
    // per-request lines cost throughput; failures are still logged
    disableRequestLogging: true,
    undici: {
      connections: config.UPSTREAM_CONNECTIONS,
      pipelining: config.UPSTREAM_PIPELINING,
      keepAliveTimeout: 60_000,
      connectTimeout: config.UPSTREAM_CONNECT_TIMEOUT_MS,
      headersTimeout: config.UPSTREAM_TIMEOUT_MS,
      bodyTimeout: config.UPSTREAM_TIMEOUT_MS,
    },
    replyOptions: {
      rewriteRequestHeaders: (request, headers) => {
        headers['x-request-id'] = request.id;
        return headers;
      },
      // reply-from has already logged the transport error with its cause
      onError: (reply, { error }) => {
        reply.send(upstreamFailure(upstream, error as FastifyError, config.UPSTREAM_TIMEOUT_MS));
      },
    },
  });
}

/** Paths of a service that is not deployed here answer 503 saying which variable would enable it. */
function notDeployed(app: FastifyInstance, upstream: Upstream) {
  const error = () =>
    httpError(503, 'SERVICE_NOT_DEPLOYED', `The ${upstream.name} service is not deployed here; set ${upstream.env}`);
  for (const url of upstream.routes) {
    app.route({ method: METHODS, url, handler: async () => Promise.reject(error()) });
  }
}

/** Registers every upstream's routes, each in its own encapsulated scope with its own pool. */
export function proxyRoutes(app: FastifyInstance, list: Upstream[], config: GatewayConfig) {
  for (const upstream of list) {
    app.register(async (scope) => {
      if (upstream.url) forward(scope, upstream, config);
      else notDeployed(scope, upstream);
    });
  }
}
