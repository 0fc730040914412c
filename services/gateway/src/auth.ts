import { type HttpError, httpError } from '@berth/service-kit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { closeIfBodyFollows } from './limits.ts';
import type { TokenChecker } from './tokens.ts';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const BEARER = /^Bearer +([^\s]+) *$/i;
const CHALLENGE = 'Bearer realm="berth"';

/** 401 with a Bearer challenge: there is no token to check. */
function tokenRequired(request: FastifyRequest, reply: FastifyReply, message: string): HttpError {
  closeIfBodyFollows(request, reply);
  reply.header('www-authenticate', CHALLENGE);
  return httpError(401, 'TOKEN_REQUIRED', message);
}

/**
 * The token check for writes: reads pass, POST, PUT, PATCH and DELETE need "Authorization: Bearer
 * <token>" with a token the checker accepts. Returns the 401 when there is no usable token, the 403
 * when it is not accepted, nothing when the request may go on.
 */
export function tokenCheck(checker: TokenChecker) {
  return function checkToken(request: FastifyRequest, reply: FastifyReply): HttpError | undefined {
    if (!WRITES.has(request.method)) return undefined;
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      return tokenRequired(
        request,
        reply,
        `${request.method} needs an API token: send "Authorization: Bearer <token>" with a token from the gateway's API_TOKENS`,
      );
    }
    const match = BEARER.exec(header);
    if (!match) {
      const scheme = (header.split(' ', 1)[0] as string).slice(0, 20);
      const problem = /^bearer$/i.test(scheme) ? 'has no token after "Bearer"' : `uses the "${scheme}" scheme`;
      return tokenRequired(request, reply, `Authorization ${problem}; send "Authorization: Bearer <token>"`);
    }
    if (checker.accepts(match[1] as string)) return undefined;
    closeIfBodyFollows(request, reply);
    return httpError(
      403,
      'TOKEN_REJECTED',
      "The API token is not one the gateway accepts; send a token from the gateway's API_TOKENS",
    );
  };
}
