import type { ReadinessCheck } from '@berth/service-kit';
import { request } from 'undici';
import type { Upstream } from './config.ts';

/** What a failed connection says in /readyz: the kind of failure, never the address it was made to. */
function reason(err: Error & { code?: string }, timeoutMs: number): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused the connection';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'its host name did not resolve';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'closed the connection';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ABORT_ERR':
      return `no answer within ${timeoutMs} ms`;
    default:
      return err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : 'could not be reached';
  }
}

/** Asks an upstream's /readyz; a non-200 answer fails with the upstream's own message. */
function upstreamReady(upstream: Upstream, timeoutMs: number): () => Promise<void> {
  return async () => {
    const res = await request(`${upstream.url}/readyz`, {
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    }).catch((err: Error) => {
      throw new Error(reason(err, timeoutMs));
    });
    const body = (await res.body.json().catch(() => ({}))) as { message?: string };
    if (res.statusCode !== 200) {
      throw new Error(`readyz answered ${res.statusCode}${body.message ? `: ${body.message}` : ''}`);
    }
  };
}

/** A check whose callers at the same moment share one call: a burst of /readyz asks each upstream once. */
function shared(check: () => Promise<void>): ReadinessCheck {
  let running: Promise<void> | undefined;
  return () => {
    running ??= check().finally(() => {
      running = undefined;
    });
    return running;
  };
}

/** One readiness check per deployed upstream. */
export function upstreamChecks(list: Upstream[], timeoutMs: number): Record<string, ReadinessCheck> {
  const checks: Record<string, ReadinessCheck> = {};
  for (const upstream of list) {
    if (upstream.url) checks[upstream.name] = shared(upstreamReady(upstream, timeoutMs));
  }
  return checks;
}
