import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import Fastify from 'fastify';

/**
 * helmet's defaults with a Content-Security-Policy for an API: nothing the gateway answers loads
 * scripts, styles, frames or anything else, and no page may frame it.
 */
export const HELMET_OPTIONS: FastifyHelmetOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
};

/** Headers every Fastify answer has anyway; what is left is what helmet added. */
const FASTIFY_OWN = new Set([
  'date',
  'connection',
  'keep-alive',
  'content-length',
  'content-type',
  'transfer-encoding',
]);

/**
 * The headers @fastify/helmet puts on an answer with these options, asked once from a private
 * instance. They do not depend on the request (no CSP nonces), and @fastify/helmet rebuilds
 * helmet's middleware on every request, which measured a third of the gateway's CPU per request.
 */
export async function helmetHeaders(options: FastifyHelmetOptions = HELMET_OPTIONS): Promise<Record<string, string>> {
  const probe = Fastify({ logger: false });
  await probe.register(helmet, options);
  probe.get('/', (_request, reply) => reply.code(204).send());
  try {
    const res = await probe.inject({ url: '/' });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(res.headers)) {
      if (!FASTIFY_OWN.has(name) && typeof value === 'string') headers[name] = value;
    }
    return headers;
  } finally {
    await probe.close();
  }
}

/**
 * Puts helmet's security headers on every answer of the app, 404s and errors included (they are
 * set in the first onRequest hook, before anything can fail). Returns a reader for the headers,
 * filled once the app is ready, for answers written outside Fastify.
 */
export function securityHeaders(app: FastifyInstance): () => Record<string, string> {
  let names: string[] = [];
  let values: string[] = [];
  let headers: Record<string, string> = {};
  app.register(async () => {
    headers = await helmetHeaders();
    names = Object.keys(headers);
    values = Object.values(headers);
  });
  app.addHook('onRequest', function addSecurityHeaders(_request, reply, done) {
    for (let i = 0; i < names.length; i++) reply.header(names[i] as string, values[i]);
    done();
  });
  return () => headers;
}
