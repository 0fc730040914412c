import { fastifySwagger } from '@fastify/swagger';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';

/** How a service describes itself in OpenAPI. */
export interface OpenApiOptions {
  title: string;
  description?: string;
  version?: string;
  /** Where the document is served (e.g. /counter/openapi.json); without it the app serves it itself. */
  route?: string;
  /** Whether a route belongs in the document, by its URL: the service's own paths, not health or metrics. */
  include(url: string): boolean;
}

/** Routes at or under a prefix, and the exact URLs given besides. */
export function underPrefix(prefix: string, ...urls: string[]): (url: string) => boolean {
  return (url) => url === prefix || url.startsWith(`${prefix}/`) || urls.includes(url);
}

/** What the route says about a body Fastify does not parse (multipart, raw bytes), for the document only. */
function withBodyContent(schema: FastifySchema): FastifySchema {
  if (!schema.bodyContent) return schema;
  const { bodyContent, ...rest } = schema;
  return { ...rest, body: { content: bodyContent } };
}

/** Schemas of a route Fastify does not validate or serialize with; set on routes that document a body. */
export type BodyContent = Record<string, { schema: Record<string, unknown> }>;

/**
 * Registers @fastify/swagger on the app itself, synchronously, so that every route added after
 * createService returns (on the root instance too, where Fastify adds routes at once) is seen by
 * its onRoute hook. With `route` set, serves the document there as JSON, built once at first ask.
 */
export function registerOpenApi(app: FastifyInstance, options: OpenApiOptions): void {
  const routes: RouteOptions[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route) => {
    // the HEAD twin Fastify adds to every GET says nothing of its own
    if (route.method !== 'HEAD') routes.push(route);
  });
  fastifySwagger(
    app,
    {
      openapi: {
        openapi: '3.0.3',
        info: { title: options.title, description: options.description, version: options.version ?? '0.1.0' },
      },
      transform({ schema, url }) {
        if (!options.include(url)) return { schema: { ...schema, hide: true }, url };
        return { schema: schema ? withBodyContent(schema) : schema, url };
      },
    },
    (err?: Error) => {
      if (err) throw err;
    },
  );
  const route = options.route;
  if (!route) return;
  let text: string | undefined;
  app.get(
    route,
    {
      schema: {
        summary: 'This service’s OpenAPI 3 document, generated from its route schemas',
        response: { 200: { type: 'object', additionalProperties: true } },
      },
    },
    async (_request, reply) => {
      text ??= JSON.stringify(app.swagger());
      return reply.type('application/json; charset=utf-8').send(text);
    },
  );
}

const registered = new WeakMap<FastifyInstance, RouteOptions[]>();

/** Every route of an app built with the openapi option, as registered (HEAD twins left out). */
export function registeredRoutes(app: FastifyInstance): readonly RouteOptions[] {
  return registered.get(app) ?? [];
}

/** The schema parts a route should declare and does not; empty when it is fully described. */
export function missingSchemas(route: Pick<RouteOptions, 'method' | 'url' | 'schema'>): string[] {
  const schema = (route.schema ?? {}) as FastifySchema;
  const method = String(route.method).toUpperCase();
  const missing: string[] = [];
  if (route.url.includes(':') && !schema.params) missing.push('params');
  if (['POST', 'PUT', 'PATCH'].includes(method) && !schema.body && !schema.bodyContent && !schema.noBody) {
    missing.push('body');
  }
  const response = (schema.response ?? {}) as Record<string, unknown>;
  const codes = Object.keys(response);
  if (!codes.some((code) => /^[23]/.test(code))) missing.push('a success response');
  const failures = codes.filter((code) => /^[45]/.test(code));
  if (failures.length === 0) missing.push('error responses');
  for (const code of failures) {
    if (!isErrorShape(response[code])) missing.push(`the error shape for ${code}`);
  }
  return missing;
}

const ERROR_FIELDS = ['statusCode', 'code', 'error', 'message'];

/** Whether a response schema describes { statusCode, code, error, message }. */
function isErrorShape(schema: unknown): boolean {
  const s = schema as { properties?: Record<string, unknown>; content?: Record<string, { schema?: unknown }> };
  if (s?.content) return Object.values(s.content).every((c) => isErrorShape(c.schema));
  return ERROR_FIELDS.every((field) => s?.properties?.[field] !== undefined);
}
