import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Registry } from 'prom-client';
import { errorHandler, notFoundHandler } from './errors.ts';
import { type ReadinessCheck, registerHealth } from './health.ts';
import { loggerOptions, QuietRequestLog, requestId } from './logger.ts';
import { registerMetrics } from './metrics.ts';
import { type BodyContent, type OpenApiOptions, registerOpenApi } from './openapi.ts';
import { strictBodyTypes } from './validation.ts';

/** What createService needs to know about the service it builds. */
export interface ServiceOptions {
  name: string;
  logLevel: string;
  readiness?: Record<string, ReadinessCheck>;
  readinessTimeoutMs?: number;
  fastify?: FastifyServerOptions;
  /** Describe the routes in an OpenAPI document generated from their schemas. */
  openapi?: OpenApiOptions;
}

declare module 'fastify' {
  interface FastifySchema {
    /** A body the handler reads itself (multipart, raw bytes), by content type: documented, not validated. */
    bodyContent?: BodyContent;
    /** A write that takes no body, said so the schema check knows it was not forgotten. */
    noBody?: true;
  }
  interface FastifyInstance {
    /** The app's own Prometheus registry, for service-specific metrics. */
    metrics: Registry;
  }
}

/**
 * A Fastify instance with everything berth services share: request ids taken from x-request-id and
 * echoed back, JSON logs naming the service, the shared error and 404 handlers, /healthz, /readyz
 * and /metrics. Services add their routes to it.
 */
export function createService(options: ServiceOptions): FastifyInstance {
  const app = Fastify({
    logger: loggerOptions(options.name, options.logLevel),
    logController: new QuietRequestLog(),
    genReqId: requestId,
    requestIdHeader: false,
    ...options.fastify,
  });
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  // before any route, so the document sees every one
  if (options.openapi) registerOpenApi(app, options.openapi);
  strictBodyTypes(app);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  registerHealth(app, options.readiness ?? {}, options.readinessTimeoutMs);
  app.decorate('metrics', registerMetrics(app, options.name));
  return app;
}
