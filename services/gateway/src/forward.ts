import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { httpError } from '@berth/service-kit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Pool } from 'undici';
import type { GatewayConfig, Upstream } from './config.ts';

/** Headers that describe one connection, not the message; never forwarded (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Answers up to this size are read whole and written in one go; larger ones stream through. */
const BUFFER_LIMIT = 256 * 1024;

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const TIMED_OUT = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Turns a transport failure into an answer that names the upstream and what happened. */
export function upstreamFailure(upstream: Upstream, error: Error & { code?: string }, timeoutMs: number) {
  const who = `The ${upstream.name} service`;
  const code = error.code ?? '';
  if (TIMED_OUT.has(code)) {
    return httpError(504, 'UPSTREAM_TIMEOUT', `${who} did not answer within ${timeoutMs} ms`);
  }
  if (UNREACHABLE.has(code)) {
    return httpError(503, 'UPSTREAM_UNAVAILABLE', `${who} is unavailable; retry in a few seconds`);
  }
  return httpError(502, 'UPSTREAM_ERROR', `${who} closed the connection without a proper answer`);
}

/** Refuses, before routing, any path that could climb out of the prefix that picked its upstream. */
export function refuseDotSegments(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
  const path = request.url;
  if (hasDotSegment(path)) {
    done(httpError(400, 'INVALID_PATH', `Path "${path}" has a "." or ".." segment; send the resolved path`));
    return;
  }
  done();
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

function requestHeaders(request: FastifyRequest): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  const given = request.headers;
  for (const name in given) {
    if (!HOP_BY_HOP.has(name)) out[name] = given[name];
  }
  const forwardedFor = given['x-forwarded-for'];
  out['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${request.ip}` : request.ip;
  out['x-forwarded-proto'] ??= request.protocol;
  if (given.host) out['x-forwarded-host'] ??= given.host;
  out['x-request-id'] = request.id;
  return out;
}

function copyResponseHeaders(reply: FastifyReply, headers: IncomingHttpHeaders) {
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name) && name !== 'date') reply.header(name, value);
  }
}

/** A forwarder for one upstream: its own keep-alive pool and the route handler that uses it. */
export function createForwarder(upstream: Upstream, config: GatewayConfig) {
  const pool = new Pool(upstream.url, {
    connections: config.UPSTREAM_CONNECTIONS,
    pipelining: config.UPSTREAM_PIPELINING,
    keepAliveTimeout: 60_000,
    connect: { timeout: config.UPSTREAM_CONNECT_TIMEOUT_MS },
    headersTimeout: config.UPSTREAM_TIMEOUT_MS,
    bodyTimeout: config.UPSTREAM_TIMEOUT_MS,
  });

  const timeoutMs = config.UPSTREAM_TIMEOUT_MS;
  const fail = (request: FastifyRequest, err: Error) => {
    request.log.warn({ err, upstream: upstream.name }, 'upstream request failed');
    return upstreamFailure(upstream, err, timeoutMs);
  };

  /**
   * Sends the request on as it came (path, query, body stream) and relays the answer. It talks to
   * undici's dispatcher directly: small answers are gathered chunk by chunk and written in one go,
   * larger or open-ended ones (files, event streams) flow through a stream with backpressure.
   */
  function handler(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const raw = request.raw;
    const hasBody = raw.headers['content-length'] !== undefined || raw.headers['transfer-encoding'] !== undefined;
    // an event stream stays open for as long as the client listens
    const eventStream = raw.headers.accept?.includes('text/event-stream') === true;
    return new Promise((resolve, reject) => {
      let chunks: Buffer[] | undefined;
      let stream: Readable | undefined;
      pool.dispatch(
        {
          path: request.url,
          method: request.method as 'GET',
          headers: requestHeaders(request),
          body: hasBody ? raw : null,
          bodyTimeout: eventStream ? 0 : timeoutMs,
        },
        {
          onRequestStart() {},
          onResponseStart(controller, statusCode, headers) {
            reply.code(statusCode);
            copyResponseHeaders(reply, headers);
            const length = Number(headers['content-length'] ?? Number.NaN);
            if (length <= BUFFER_LIMIT) {
              chunks = [];
              return;
            }
            stream = new Readable({
              read: () => controller.resume(),
              destroy: (err, done) => {
                if (!controller.aborted) controller.abort(err ?? new Error('client went away'));
                done(err);
              },
            });
            resolve(reply.send(stream));
          },
          onResponseData(controller, chunk) {
            if (chunks) chunks.push(chunk);
            else if (stream && !stream.push(chunk)) controller.pause();
          },
          onResponseEnd() {
            if (chunks) resolve(reply.send(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
            else stream?.push(null);
          },
          onResponseError(_controller, err) {
            if (stream) {
              stream.destroy(err);
              return;
            }
            // the status and headers set so far belong to an answer that never completed
            if (chunks) for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
            reject(fail(request, err));
          },
        },
      );
    });
  }

  return { pool, handler };
}
