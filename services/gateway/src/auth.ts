import { httpError } from '@berth/service-kit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenChecker } from './tokens.ts';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * A refused request may still be sending its body; closing the connection after the answer keeps
 * the server from reading (and discarding) an upload nobody asked for.
 */
export function closeIfBodyFollows(request: FastifyRequest, reply: FastifyReply) {
  const headers = request.headers;
  if (headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0') {
    reply.header('connection', 'close');
  }
}
const BEARER = /^Bearer +([^\s]+) *$/i;
const CHALLENGE = 'Bearer realm="berth"';

/**
 * An onRequest hook: reads pass, writes need "Authorization: Bearer <token>" with a token the checker
 * accepts. 401 (with a Bearer challenge) when there is no usable token, 403 when it is not accepted.
 */
export function requireTokenForWrites(checker: TokenChecker) {
  return function checkToken(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    if (!WRITES.has(request.method)) {
      done();
      return;
    }
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      closeIfBodyFollows(request, reply);
      reply.header('www-authenticate', CHALLENGE);
      done(
        httpError(
          401,
          'TOKEN_REQUIRED',
          `${request.method} needs an API token: send "Authorization: Bearer <token>" with a token from the gateway's API_TOKENS`,
        ),
      );
      return;
    }
    const match = BEARER.exec(header);
    if (!match) {
      const scheme = (header.split(' ', 1)[0] as string).slice(0, 20);
      const problem = /^bearer$/i.test(scheme) ? 'has no token after "Bearer"' : `uses the "${scheme}" scheme`;
      closeIfBodyFollows(request, reply);
      reply.header('www-authenticate', CHALLENGE);
      done(httpError(401, 'TOKEN_REQUIRED', `Authorization ${problem}; send "Authorization: Bearer <token>"`));
      return;
    }
    if (!checker.accepts(match[1] as string)) {
      closeIfBodyFollows(request, reply);
      done(
        httpError(
          403,
          'TOKEN_REJECTED',
          "The API token is not one the gateway accepts; send a token from the gateway's API_TOKENS",
        ),
      );
      return;
    }
    done();
  };
}
