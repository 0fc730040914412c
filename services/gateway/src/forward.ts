import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { HttpError, httpError } from '@berth/service-kit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Pool } from 'undici';
import { withoutQueryToken } from './auth.ts';
import type { CircuitBreaker } from './breaker.ts';
import type { GatewayConfig, Upstream } from './config.ts';
import { RETRY_AFTER_S, type StreamSlots } from './event-streams.ts';
import { type BodyLimit, bodyTooLarge, capped } from './limits.ts';

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

/**
 * Request headers that are also left out: Expect asks the next hop for a 100 Continue, which Node's
 * server has already sent the client; the upstream gets the body at once (undici refuses Expect).
 */
const REQUEST_ONLY = new Set([...HOP_BY_HOP, 'expect']);

/** Answers up to this size are read whole and written in one go; larger ones stream through. */
const BUFFER_LIMIT = 256 * 1024;

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const TIMED_OUT = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
/** Connection failures worth one more try for a GET or HEAD, when nothing of the answer has arrived. */
const RETRYABLE = new Set(['ECONNRESET', 'ECONNREFUSED', 'UND_ERR_SOCKET']);
/** Failures that count towards opening the circuit: the upstream is unreachable, broken or hung. */
const BREAKS_CIRCUIT = new Set([
  ...UNREACHABLE,
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
]);

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

/**
 * The request's headers for the upstream, hop-by-hop ones left out. X-Forwarded-For keeps the chain
 * it came with only when the peer is a trusted proxy (then Fastify took the client address from it);
 * from anyone else it is replaced, so services never see an address a client made up.
 */
function requestHeaders(request: FastifyRequest): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  const given = request.headers;
  for (const name in given) {
    if (!REQUEST_ONLY.has(name)) out[name] = given[name];
  }
  const peer = request.socket.remoteAddress ?? '';
  const chain = request.ip !== peer ? given['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = chain ? `${chain}, ${peer}` : peer;
  out['x-forwarded-proto'] = request.protocol;
  if (given.host) out['x-forwarded-host'] = request.host;
  out['x-request-id'] = request.id;
  return out;
}

/** The upstream's answer headers; a Vary set at the gateway (CORS: Origin) is kept alongside the upstream's. */
function copyResponseHeaders(reply: FastifyReply, headers: IncomingHttpHeaders) {
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || name === 'date') continue;
    if (name === 'vary' && reply.hasHeader('vary')) reply.header('vary', `${reply.getHeader('vary')}, ${value}`);
    else reply.header(name, value);
  }
}

/** What a forwarder uses besides the config: its circuit breaker and the body limit per request. */
export interface ForwarderOptions {
  breaker?: CircuitBreaker;
  bodyLimit: (upstream: Upstream, request: FastifyRequest) => BodyLimit;
  /**
   * Set for an event-stream route: the forwarder gets its own pool of EVENT_STREAMS_MAX connections
   * (so streams never hold the ones ordinary requests use), each stream takes one of these places
   * first, and neither the client's idle timeout nor the upstream's body timeout applies.
   */
  streams?: StreamSlots;
}

/** A forwarder for one upstream: its own keep-alive pool and the route handler that uses it. */
export function createForwarder(upstream: Upstream, config: GatewayConfig, options: ForwarderOptions) {
  const slots = options.streams;
  const pool = new Pool(upstream.url, {
    connections: slots ? config.EVENT_STREAMS_MAX : config.UPSTREAM_CONNECTIONS,
    pipelining: slots ? 1 : config.UPSTREAM_PIPELINING,
    keepAliveTimeout: slots ? 4_000 : 60_000,
    connect: { timeout: config.UPSTREAM_CONNECT_TIMEOUT_MS },
    headersTimeout: config.UPSTREAM_TIMEOUT_MS,
    bodyTimeout: slots ? 0 : config.UPSTREAM_TIMEOUT_MS,
  });

  const timeoutMs = config.UPSTREAM_TIMEOUT_MS;
  const retry = config.UPSTREAM_RETRY;
  const { breaker, bodyLimit } = options;

  const fail = (request: FastifyRequest, err: Error) => {
    request.log.warn({ err, upstream: upstream.name }, 'upstream request failed');
    return upstreamFailure(upstream, err, timeoutMs);
  };

  /**
   * Tells the breaker how a call that got no answer ended. A timeout of a request that carries a
   * body (an upload, an import) or of a path that is slow by its nature (a thumbnail made on
   * request) says something about the request, not the upstream: it counts neither way.
   */
  const noAnswer = (request: FastifyRequest, err: Error & { code?: string }) => {
    if (!breaker) return;
    const code = err.code ?? '';
    const costly =
      TIMED_OUT.has(code) &&
      ((request.headers['content-length'] ?? '0') !== '0' ||
        request.headers['transfer-encoding'] !== undefined ||
        upstream.slow?.test(request.url) === true);
    if (BREAKS_CIRCUIT.has(code) && !costly) breaker.failure();
    else breaker.neutral();
  };

  /** 503 at once while the circuit is open: no connection is tried and nothing is logged per request. */
  const circuitOpen = (reply: FastifyReply): FastifyReply => {
    const seconds = Math.max(1, Math.ceil((breaker?.retryInMs() ?? 0) / 1000));
    const message = `The ${upstream.name} service is unavailable (it failed ${breaker?.failures} times in a row); the gateway tries it again in ${seconds} s`;
    reply.code(503).header('retry-after', String(seconds)).type('application/json; charset=utf-8');
    const body = { statusCode: 503, code: 'UPSTREAM_UNAVAILABLE', error: 'Service Unavailable', message };
    return reply.send(JSON.stringify(body));
  };

  /**
   * Sends the request on as it came (path, query, body stream) and relays the answer. It talks to
   * undici's dispatcher directly: small answers are gathered chunk by chunk and written in one go,
   * larger or open-ended ones (files, event streams) flow through a stream with backpressure.
   * A GET or HEAD that fails to connect, or whose connection breaks before any of the answer
   * arrives, is sent once more; bodies are held to their limit, declared or counted.
   */
  function handler(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> | FastifyReply {
    const raw = request.raw;
    const method = request.method;
    let body: Readable | null = null;
    if (raw.headers['content-length'] !== undefined) {
      const limit = bodyLimit(upstream, request);
      const declared = Number(raw.headers['content-length']);
      if (declared > limit.bytes) {
        reply.header('connection', 'close');
        return Promise.reject(bodyTooLarge(limit, declared));
      }
      body = raw;
    } else if (raw.headers['transfer-encoding'] !== undefined) {
      body = Readable.from(capped(raw, bodyLimit(upstream, request)), { objectMode: false });
    }
    if (breaker && !breaker.allow()) return circuitOpen(reply);
    if (slots) {
      const release = slots.acquire(request.ip);
      if (typeof release !== 'function') {
        reply.header('retry-after', String(RETRY_AFTER_S));
        return Promise.reject(release);
      }
      reply.raw.once('close', release);
      // an event stream stays open for as long as the client listens
      raw.socket.setTimeout(0);
    }
    const retryable = retry && body === null && (method === 'GET' || method === 'HEAD');
    const headers = requestHeaders(request);
    const path = withoutQueryToken(request.url);
    return new Promise((resolve, reject) => {
      const send = (attempt: number) => {
        let chunks: Buffer[] | undefined;
        let stream: Readable | undefined;
        let relayed: IncomingHttpHeaders | undefined;
        pool.dispatch(
          {
            path,
            method: method as 'GET',
            headers,
            body,
          },
          {
            onRequestStart() {},
            onResponseStart(controller, statusCode, upstreamHeaders) {
              breaker?.success();
              relayed = upstreamHeaders;
              reply.code(statusCode);
              copyResponseHeaders(reply, upstreamHeaders);
              const length = Number(upstreamHeaders['content-length'] ?? Number.NaN);
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
            onResponseError(_controller, err: Error & { code?: string }) {
              if (stream) {
                stream.destroy(err);
                return;
              }
              if (relayed) {
                // the status and headers relayed so far belong to an answer that never completed
                for (const name in relayed) reply.removeHeader(name);
              } else if (retryable && attempt === 0 && RETRYABLE.has(err.code ?? '') && !raw.destroyed) {
                send(1);
                return;
              } else {
                noAnswer(request, err);
              }
              if (err instanceof HttpError) {
                // the body went over its limit while it streamed
                reply.header('connection', 'close');
                reject(err);
                return;
              }
              reject(fail(request, err));
            },
          },
        );
      };
      send(0);
    });
  }

  return { pool, handler };
}
