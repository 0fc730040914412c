import fastifySwaggerUi, { type FastifySwaggerUiOptions } from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { OpenApiCatalog } from '../openapi.ts';

/**
 * The Content-Security-Policy of the docs pages: swagger-ui's own, with every source outside the
 * gateway taken out (its assets are served from here; no fonts, badges or upgrades from elsewhere).
 */
export function docsPolicy(policy: string): string {
  return policy
    .split(';')
    .map((directive) => directive.trim())
    .filter((directive) => directive && directive !== 'upgrade-insecure-requests')
    .map((directive) =>
      directive
        .split(/\s+/)
        .filter((source) => source !== 'https:' && !source.includes('swagger.io'))
        .join(' ')
        .replace(/^frame-ancestors .*/, "frame-ancestors 'none'"),
    )
    .join('; ');
}

/**
 * @fastify/swagger-ui in a scope of its own: registered as it is, it insists on @fastify/swagger
 * registered through register(), where service-kit calls that directly so it sees every route.
 */
async function swaggerUi(scope: FastifyInstance, options: FastifySwaggerUiOptions) {
  // typed as a callback plugin, it is an async function that never calls back
  await (fastifySwaggerUi as unknown as (s: FastifyInstance, o: FastifySwaggerUiOptions) => Promise<void>)(
    scope,
    options,
  );
}

/** GET /openapi.json (the merged document) and the interactive docs at /docs, which read the same. */
export function docsRoutes(app: FastifyInstance, catalog: OpenApiCatalog) {
  app.get(
    '/openapi.json',
    {
      schema: {
        summary: 'The OpenAPI 3 document of every route behind the gateway, merged from the services’ own',
        response: { 200: { type: 'object', additionalProperties: true } },
      },
    },
    async (_request, reply) => reply.type('application/json; charset=utf-8').send(await catalog.current()),
  );
  app.register(swaggerUi, {
    routePrefix: '/docs',
    // no validator badge: it would ask validator.swagger.io about the document
    uiConfig: { validatorUrl: null, deepLinking: true, persistAuthorization: false },
    staticCSP: true,
    transformStaticCSP: docsPolicy,
    // a document missing a service is fetched again before the page reads it
    uiHooks: {
      onRequest: async (request: FastifyRequest) => {
        if (request.url.split('?')[0]?.endsWith('/json')) await catalog.current();
      },
    },
    transformSpecification: () => catalog.document(),
    transformSpecificationClone: false,
  });
}
