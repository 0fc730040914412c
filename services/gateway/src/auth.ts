import { type HttpError, httpError } from '@berth/service-kit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { closeIfBodyFollows } from './limits.ts';
import type { Scope, TokenChecker } from './tokens.ts';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const BEARER = /^Bearer +([^\s]+) *$/i;
const CHALLENGE = 'Bearer realm="berth"';
/** The query parameter a read may carry its token in (RFC 6750 section 2.3), for <img> and EventSource. */
const QUERY_TOKEN = /[?&]access_token=([^&#]*)/;

/** A query value decoded; one that is not valid percent-encoding stays as it is (no token matches it: 403). */
function decoded(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** 401 with a Bearer challenge: there is no token to check. */
function tokenRequired(request: FastifyRequest, reply: FastifyReply, message: string): HttpError {
  closeIfBodyFollows(request, reply);
  reply.header('www-authenticate', CHALLENGE);
  return httpError(401, 'TOKEN_REQUIRED', message);
}

/** The token a request carries: the Authorization header's, else (for reads) ?access_token=; or the 401. */
function presented(request: FastifyRequest, reply: FastifyReply, scope: Scope, why: string): string | HttpError {
  const header = request.headers.authorization;
  if (header === undefined || header === '') {
    const query = scope === 'read' ? QUERY_TOKEN.exec(request.url)?.[1] : undefined;
    if (query) return decoded(query);
    return tokenRequired(
      request,
      reply,
      `${request.method} needs an API token${why}: send "Authorization: Bearer <token>" with a token from the gateway's API_TOKENS`,
    );
  }
  const match = BEARER.exec(header);
  if (match) return match[1] as string;
  const scheme = (header.split(' ', 1)[0] as string).slice(0, 20);
  const problem = /^bearer$/i.test(scheme) ? 'has no token after "Bearer"' : `uses the "${scheme}" scheme`;
  return tokenRequired(request, reply, `Authorization ${problem}; send "Authorization: Bearer <token>"`);
}

/** Checks the request's token for a scope: the 401 or 403 to answer, or nothing when it may go on. */
export function requireScope(
  checker: TokenChecker,
  request: FastifyRequest,
  reply: FastifyReply,
  scope: Scope,
  why = '',
): HttpError | undefined {
  const token = presented(request, reply, scope, why);
  if (typeof token !== 'string') return token;
  const scopes = checker.scopes(token);
  if (scopes?.has(scope)) return undefined;
  closeIfBodyFollows(request, reply);
  if (!scopes) {
    return httpError(
      403,
      'TOKEN_REJECTED',
      "The API token is not one the gateway accepts; send a token from the gateway's API_TOKENS",
    );
  }
  return httpError(
    403,
    'TOKEN_SCOPE',
    `The API token may ${[...scopes].join(', ')}; ${request.method} ${request.url.split('?', 1)[0]} needs the "${scope}" scope: use a token listed as ${scope}:<token> in API_TOKENS`,
  );
}

/**
 * The token check for forwarded requests: POST, PUT, PATCH and DELETE need "Authorization: Bearer
 * <token>" with a token of the "write" scope; reads pass, unless `reads` (READS_REQUIRE_TOKEN) is
 * on: then GET and HEAD need one of the "read" scope, in the header or as ?access_token= (for
 * <img> and EventSource, which cannot send headers). Preflights (OPTIONS) always pass. Returns
 * the 401 when there is no usable token, the 403 when it is not accepted or may not do this.
 */
export function tokenCheck(checker: TokenChecker, options: { reads: boolean } = { reads: false }) {
  const readsWhy = ' with the "read" scope here (READS_REQUIRE_TOKEN is on)';
  return function checkToken(request: FastifyRequest, reply: FastifyReply): HttpError | undefined {
    if (WRITES.has(request.method)) return requireScope(checker, request, reply, 'write');
    if (!options.reads || request.method === 'OPTIONS') return undefined;
    return requireScope(checker, request, reply, 'read', readsWhy);
  };
}

/** The URL without its access_token parameter: tokens are never passed on to the services. */
export function withoutQueryToken(url: string): string {
  if (!url.includes('access_token=')) return url;
  const [path, query = ''] = url.split('?', 2) as [string, string?];
  const kept = query.split('&').filter((pair) => !pair.startsWith('access_token='));
  return kept.length > 0 ? `${path}?${kept.join('&')}` : path;
}
