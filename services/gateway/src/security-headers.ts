import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import type { FastifyInstance, FastifyReply } from 'fastify';
import Fastify from 'fastify';

/**
 * helmet's headers for an API, the set OWASP's REST Security Cheat Sheet names plus
 * Cross-Origin-Resource-Policy (so other sites cannot pull image files into their pages):
 * a Content-Security-Policy that lets nothing load and no page frame an answer, X-Frame-Options
 * saying the same to older browsers, Strict-Transport-Security and X-Content-Type-Options.
 * Left out are the headers that act only on HTML documents (Cross-Origin-Opener-Policy,
 * Referrer-Policy, Origin-Agent-Cluster, X-DNS-Prefetch-Control) or on browsers and plugins long
 * gone (X-Download-Options, X-Permitted-Cross-Domain-Policies, X-XSS-Protection): each costs bytes
 * and CPU on every answer, on both ends. A route that serves a page can add them.
 */
export const HELMET_OPTIONS: FastifyHelmetOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  frameguard: { action: 'deny' },
  crossOriginOpenerPolicy: false,
  referrerPolicy: false,
  originAgentCluster: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
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

/** helmet's headers, ready once the app is: put them on a reply, or read them for a raw answer. */
export interface SecurityHeaders {
  apply(reply: FastifyReply): void;
  read(): Record<string, string>;
}

/**
 * helmet's security headers for every answer of the app. The app's first onRequest hook applies
 * them, before anything can fail, so 404s and errors have them too.
 */
export function securityHeaders(app: FastifyInstance): SecurityHeaders {
  let names: string[] = [];
  let values: string[] = [];
  let headers: Record<string, string> = {};
  app.register(async () => {
    headers = await helmetHeaders();
    names = Object.keys(headers);
    values = Object.values(headers);
  });
  return {
    apply(reply) {
      for (let i = 0; i < names.length; i++) reply.header(names[i] as string, values[i]);
    },
    read: () => headers,
  };
}
