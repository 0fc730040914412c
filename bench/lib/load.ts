import autocannon, { type Options } from 'autocannon';
import { type LatencySummary, Samples } from './stats.ts';

/** What one load run measured. Latencies are over 2xx responses only, in milliseconds. */
export interface LoadResult {
  url: string;
  /** 'closed': N connections each sending as fast as answers come; 'fixed': a steady request rate. */
  mode: 'closed' | 'fixed';
  connections: number;
  /** The rate asked for in a fixed-rate run, requests per second. */
  targetRate?: number;
  seconds: number;
  /** 2xx responses per second over the whole run. */
  rps: number;
  ok: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  latency: LatencySummary;
}

/** Options for a closed-loop run. */
export interface ClosedLoopOptions {
  url: string;
  connections: number;
  seconds: number;
  /** Set for servers that close the connection after every answer (gunicorn's sync workers). */
  closesConnections?: boolean;
  /** Picks each request's path and query, for a run over many URLs of one server; default the url's. */
  path?: () => string;
  signal?: AbortSignal;
}

/** A request template of autocannon's `requests` option; setupRequest rewrites each request before it is sent. */
interface RequestTemplate {
  setupRequest?: (request: { path?: string }) => { path?: string };
}

/** The autocannon client internals reconnectOnClose relies on (autocannon 9). */
interface CannonClient {
  on(event: 'headers', listener: (info: { shouldKeepAlive: boolean }) => void): void;
  _doRequest: (...args: unknown[]) => unknown;
  _resetConnection: () => void;
}

/**
 * autocannon writes the next request on the same socket as soon as an answer is complete, even when
 * the server said Connection: close; that request dies with the socket but stays queued, so errors
 * pile up and later answers are timed from stale start times. This makes such a client open a fresh
 * connection instead, as any HTTP client would, so a server without keep-alive is measured at its
 * real pace (checked against wrk).
 */
function reconnectOnClose(client: CannonClient) {
  if (typeof client._doRequest !== 'function' || typeof client._resetConnection !== 'function') {
    throw new Error('This autocannon version cannot load a server that closes connections; pin autocannon 9');
  }
  let closing = false;
  client.on('headers', (info) => {
    if (!info.shouldKeepAlive) closing = true;
  });
  const send = client._doRequest;
  client._doRequest = function (this: CannonClient, ...args: unknown[]) {
    if (!closing) return send.apply(this, args);
    closing = false;
    // drops the spent socket and connects again; connecting sends the next request
    this._resetConnection();
  };
}

/**
 * Saturates url with autocannon: every connection sends its next request as soon as the previous one
 * is answered, so req/s is the server's capacity at that concurrency. Latencies are taken from each
 * response rather than autocannon's histogram, which keeps whole milliseconds only.
 */
export async function closedLoop(options: ClosedLoopOptions): Promise<LoadResult> {
  options.signal?.throwIfAborted();
  const samples = new Samples();
  const { path } = options;
  const settings: Options & { requests?: RequestTemplate[] } = {
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    setupClient: options.closesConnections ? (client) => reconnectOnClose(client as CannonClient) : undefined,
  };
  if (path) settings.requests = [{ setupRequest: (request) => ({ ...request, path: path() }) }];
  const instance = autocannon(settings);
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) samples.push(ms);
  });
  const abort = () => instance.stop();
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    const result = await instance;
    options.signal?.throwIfAborted();
    return {
      url: options.url,
      mode: 'closed',
      connections: options.connections,
      seconds: result.duration,
      rps: result['2xx'] / result.duration,
      ok: result['2xx'],
      non2xx: result.non2xx,
      errors: result.errors,
      latency: samples.summarize(),
    };
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
}
