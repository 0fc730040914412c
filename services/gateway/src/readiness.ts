import type { ReadinessCheck } from '@berth/service-kit';
import { request } from 'undici';
import type { Upstream } from './config.ts';

/** Asks an upstream's /readyz; a non-200 answer fails with the upstream's own message. */
function upstreamReady(upstream: Upstream, timeoutMs: number): ReadinessCheck {
  return async () => {
    const res = await request(`${upstream.url}/readyz`, {
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.body.json().catch(() => ({}))) as { message?: string };
    if (res.statusCode !== 200) {
      throw new Error(`readyz answered ${res.statusCode}${body.message ? `: ${body.message}` : ''}`);
    }
  };
}

/** One readiness check per deployed upstream. */
export function upstreamChecks(list: Upstream[], timeoutMs: number): Record<string, ReadinessCheck> {
  const checks: Record<string, ReadinessCheck> = {};
  for (const upstream of list) {
    if (upstream.url) checks[upstream.name] = upstreamReady(upstream, timeoutMs);
  }
  return checks;
}
