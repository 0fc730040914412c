import { isUtf8 } from 'node:buffer';
import { httpError } from '@berth/service-kit';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

function badQuery(name: string, raw: string) {
  const shown = raw.length > 40 ? `${raw.slice(0, 37)}...` : raw;
  return httpError(
    400,
    'INVALID_ENCODING',
    `Query parameter "${name}" is not valid percent-encoded UTF-8 (got "${shown}"); encode the text as UTF-8 first`,
  );
}

const PRINTABLE_ASCII = /^[\x21-\x7e]*$/;

function decode(component: string): string | undefined {
  try {
    return decodeURIComponent(component.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/**
 * Refuses a query string whose percent-escapes are not UTF-8 (e.g. %FF): the stock parser would
 * keep such text as literal "%FF" and search for it. Raw bytes beyond ASCII are refused too.
 */
export function checkQueryEncoding(request: FastifyRequest): void {
  const at = request.url.indexOf('?');
  if (at === -1) return;
  for (const pair of request.url.slice(at + 1).split('&')) {
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    const name = decode(rawName);
    if (name === undefined || !PRINTABLE_ASCII.test(rawName)) throw badQuery(rawName, rawName);
    if (decode(rawValue) === undefined || !PRINTABLE_ASCII.test(rawValue)) throw badQuery(name, rawValue);
  }
}

/**
 * JSON bodies are read as bytes and must be valid UTF-8: decoding them as text first would turn
 * broken bytes into U+FFFD and store a different joke from the one that was sent.
 */
export function strictJsonBodies(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      done(httpError(400, 'INVALID_ENCODING', 'Body is not valid UTF-8; send the JSON encoded as UTF-8'), undefined);
      return;
    }
    parseJson(request, bytes.toString('utf8'), done);
  });
  // a callback hook: an async one would cost every request a promise for a check that rarely fails
  app.addHook('onRequest', (request, _reply, done) => {
    try {
      checkQueryEncoding(request);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  });
}

/** Requests Fastify refuses before routing (broken percent-escapes, an over-long path segment) answered in the shared shape. */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  // a path segment longer than Fastify's maxParamLength (100) cannot be an id
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return reply.code(414).send({
      statusCode: 414,
      code: 'PATH_TOO_LONG',
      error: 'URI Too Long',
      message: 'A path segment is longer than 100 characters; a joke id is a whole number from 1 to 2147483647',
    });
  }
  if (error.code !== 'FST_ERR_BAD_URL') {
    request.log.error({ err: error }, 'request refused before routing');
    return reply.code(500).send({
      statusCode: 500,
      code: 'INTERNAL_ERROR',
      error: 'Internal Server Error',
      message: `Something went wrong on our side; quote request id ${request.id} when reporting it`,
    });
  }
  const path = request.url.split('?')[0] ?? '';
  const single = /^\/jokes\/([^/]+)$/.exec(path);
  const message = single
    ? `Path parameter "id" is not valid percent-encoded UTF-8 (got "${single[1]}"); it must be a whole number`
    : `Path "${path}" is not valid percent-encoded UTF-8`;
  return reply.code(400).send({ statusCode: 400, code: 'INVALID_ENCODING', error: 'Bad Request', message });
}
