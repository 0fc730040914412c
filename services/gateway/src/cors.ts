import { ConfigError } from '@berth/service-kit';
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/** scheme://host[:port], nothing after it: what a browser sends in Origin. */
const ORIGIN = /^https?:\/\/[^\s/?#]+$/i;

/** CORS_ORIGINS as a list: exact origins, or "*" for any; empty means no cross-origin access. */
export function parseOrigins(value: string): string[] {
  const origins = value
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  for (const origin of origins) {
    if (origin !== '*' && !ORIGIN.test(origin)) {
      throw new ConfigError(
        `CORS_ORIGINS has "${origin}", which is not an origin; write scheme://host[:port] without a path, e.g. https://app.example.com`,
      );
    }
  }
  return origins;
}

/**
 * Lets the listed origins call the API from a browser: preflights are answered at the gateway
 * (before auth, as browsers send them without credentials); other origins get no CORS headers,
 * so their browsers refuse the answers. Clients send the token in a header, never a cookie.
 */
export function allowOrigins(app: FastifyInstance, origins: string[]) {
  if (origins.length === 0) return;
  app.register(cors, {
    origin: origins.includes('*') ? '*' : origins,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'if-none-match', 'range'],
    exposedHeaders: ['ratelimit', 'ratelimit-policy', 'retry-after', 'x-request-id', 'location', 'etag'],
    maxAge: 600,
    // a bare OPTIONS (no Origin) gets the same 204 instead of a plain-text 400
    strictPreflight: false,
  });
}
