import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { ConfigError, type HttpError, httpError } from '@berth/service-kit';
import type { FastifyError, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import type { GatewayConfig, Upstream } from './config.ts';

/** Refuses settings that contradict each other, naming the variables. */
export function checkTimeouts(config: GatewayConfig): void {
  if (config.HEADERS_TIMEOUT_MS > config.REQUEST_TIMEOUT_MS) {
    throw new ConfigError(
      `HEADERS_TIMEOUT_MS (${config.HEADERS_TIMEOUT_MS}) must not be larger than REQUEST_TIMEOUT_MS (${config.REQUEST_TIMEOUT_MS})`,
    );
  }
  if (config.IDLE_TIMEOUT_MS !== 0 && config.IDLE_TIMEOUT_MS <= config.UPSTREAM_TIMEOUT_MS) {
    throw new ConfigError(
      `IDLE_TIMEOUT_MS (${config.IDLE_TIMEOUT_MS}) must be larger than UPSTREAM_TIMEOUT_MS (${config.UPSTREAM_TIMEOUT_MS}), or a client waiting for a slow answer is cut off; 0 turns it off`,
    );
  }
}

/**
 * Node's HTTP server settings against slow and oversized clients: headers must arrive within
 * HEADERS_TIMEOUT_MS and the whole request within REQUEST_TIMEOUT_MS (checked every second or
 * sooner), a connection idle for IDLE_TIMEOUT_MS mid-request is closed, keep-alive connections
 * close after KEEP_ALIVE_TIMEOUT_MS, and request line plus headers may take MAX_HEADER_BYTES.
 */
export function serverOptions(config: GatewayConfig): FastifyServerOptions {
  return {
    http: {
      maxHeaderSize: config.MAX_HEADER_BYTES,
      headersTimeout: config.HEADERS_TIMEOUT_MS,
      requestTimeout: config.REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.HEADERS_TIMEOUT_MS / 4))),
    },
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    connectionTimeout: config.IDLE_TIMEOUT_MS,
  } as FastifyServerOptions;
}

/** True when a path holds a dot segment, plain or percent-encoded, that could climb out of a prefix. */
export function hasDotSegment(path: string): boolean {
  if (!path.includes('.') && !path.includes('%')) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.split('?', 1)[0] as string);
  } catch {
    return true;
  }
  return decoded
    .replaceAll('\\', '/')
    .split('/')
    .some((segment) => segment === '..' || segment === '.');
}

/**
 * Refuses request targets that are not a path (`OPTIONS *`, absolute URLs: the gateway is no
 * forward proxy), over-long URLs (414) and paths that could climb out of their prefix (400).
 */
export function requestTargetError(url: string, maxUrlBytes: number): HttpError | undefined {
  if (!url.startsWith('/')) {
    return httpError(
      400,
      'INVALID_REQUEST_TARGET',
      `Request target "${url.slice(0, 200)}" is not a path; send one that starts with "/"`,
    );
  }
  if (url.length > maxUrlBytes) {
    return httpError(
      414,
      'URL_TOO_LONG',
      `The URL has ${url.length} bytes, more than the ${maxUrlBytes} allowed; send long input in a request body`,
    );
  }
  if (hasDotSegment(url)) {
    return httpError(
      400,
      'INVALID_PATH',
      `Path "${url.slice(0, 200)}" has a "." or ".." segment; send the resolved path`,
    );
  }
  return undefined;
}

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

/** A body limit and what it is for, for the 413 message. */
export interface BodyLimit {
  bytes: number;
  what: string;
}

const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\b/i;

/**
 * The largest body a request may carry: image uploads and data set imports under /images get their
 * own (larger) limits unless they are JSON; every other body gets BODY_LIMIT_BYTES.
 */
export function bodyLimits(config: GatewayConfig) {
  const json: BodyLimit = { bytes: config.BODY_LIMIT_BYTES, what: 'request bodies' };
  const upload: BodyLimit = { bytes: config.UPLOAD_LIMIT_BYTES, what: 'image uploads' };
  const imports: BodyLimit = { bytes: config.IMPORT_LIMIT_BYTES, what: 'data set imports' };
  return function bodyLimit(upstream: Upstream, request: FastifyRequest): BodyLimit {
    if (upstream.name !== 'images' || JSON_TYPE.test(request.headers['content-type'] ?? '')) return json;
    return request.url.startsWith('/images/imports') ? imports : upload;
  };
}

/** The 413 for a body over its limit; the connection closes after it, as the rest of the body is not read. */
export function bodyTooLarge(limit: BodyLimit, declared?: number): HttpError {
  const size = declared === undefined ? 'The request body is' : `The request body of ${declared} bytes is`;
  return httpError(
    413,
    'BODY_TOO_LARGE',
    `${size} larger than ${limit.bytes} bytes, the limit for ${limit.what} here; send a smaller one`,
  );
}

/** A body without a declared length, passed on chunk by chunk until it goes over the limit. */
export async function* capped(body: AsyncIterable<Buffer>, limit: BodyLimit): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.length;
    if (seen > limit.bytes) throw bodyTooLarge(limit);
    yield chunk;
  }
}

/** What Node's parser refused, as an answer in the shared error shape. */
function describeClientError(err: NodeJS.ErrnoException, config: GatewayConfig): [number, string, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [
        431,
        'HEADERS_TOO_LARGE',
        `The request line and headers are larger than ${config.MAX_HEADER_BYTES} bytes; send fewer or shorter headers`,
      ];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        408,
        'REQUEST_TIMEOUT',
        `The request did not arrive in time: headers are due within ${config.HEADERS_TIMEOUT_MS} ms and the whole request within ${config.REQUEST_TIMEOUT_MS} ms`,
      ];
    default:
      return [400, 'MALFORMED_REQUEST', 'The request is not valid HTTP/1.1; check the request line and headers'];
  }
}

/**
 * Answers requests Node's HTTP parser refuses before Fastify sees them (headers too large, too
 * slow, malformed) in the shared JSON shape and with the security headers, then closes the socket.
 */
export function clientErrorHandler(config: GatewayConfig, securityHeaders: () => Record<string, string>) {
  return function onClientError(err: NodeJS.ErrnoException, socket: Socket) {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const [statusCode, code, message] = describeClientError(err, config);
    const error = STATUS_CODES[statusCode] ?? 'Error';
    const body = JSON.stringify({ statusCode, code, error, message });
    let head = `HTTP/1.1 ${statusCode} ${error}\r\nContent-Type: application/json; charset=utf-8\r\n`;
    head += `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n`;
    for (const [name, value] of Object.entries(securityHeaders())) head += `${name}: ${value}\r\n`;
    if (socket.writable) socket.write(`${head}\r\n${body}`);
    socket.destroy();
  };
}

/**
 * Answers what Fastify's router refuses before any hook runs (a path that is not valid
 * percent-encoding, an over-long path parameter) in the shared shape, with the security headers
 * and request id every other answer has.
 */
export function frameworkErrorHandler(securityHeaders: () => Record<string, string>) {
  return function onFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    reply.headers(securityHeaders()).header('x-request-id', request.id);
    const path = (request.url ?? '').split('?', 1)[0]?.slice(0, 200);
    const badUrl = error.code === 'FST_ERR_BAD_URL';
    return reply.code(400).send({
      statusCode: 400,
      code: badUrl ? 'INVALID_PATH' : (error.code ?? 'BAD_REQUEST'),
      error: 'Bad Request',
      message: badUrl ? `Path "${path}" is not valid percent-encoding; write a literal "%" as "%25"` : error.message,
    });
  };
}
