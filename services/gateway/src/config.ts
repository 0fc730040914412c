import { baseEnv } from '@berth/service-kit';
import { type Static, Type } from 'typebox';

/** An upstream's base URL, or empty when that service is not deployed. */
function upstreamUrl(defaultValue: string) {
  return Type.String({ pattern: '^$|^https?://[^\\s/?#]+/?$', default: defaultValue });
}

/** The gateway's environment. */
export const GatewayEnv = Type.Object({
  ...baseEnv(5000),
  COUNTER_URL: upstreamUrl('http://127.0.0.1:3001'),
  JOKES_URL: upstreamUrl('http://127.0.0.1:3002'),
  IMAGES_URL: upstreamUrl('http://127.0.0.1:3003'),
  UPSTREAM_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1024, default: 128 }),
  UPSTREAM_PIPELINING: Type.Integer({ minimum: 1, maximum: 100, default: 1 }),
  UPSTREAM_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 60_000, default: 2000 }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000 }),
  READY_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 10_000, default: 1000 }),
});

/** Validated gateway configuration. */
export type GatewayConfig = Static<typeof GatewayEnv>;

/** One service behind the gateway and the paths it owns. */
export interface Upstream {
  name: 'counter' | 'jokes' | 'images';
  /** Base URL without a trailing slash; empty when not deployed. */
  url: string;
  /** Paths forwarded as they are. */
  routes: string[];
  /** The variable that sets url, for messages. */
  env: string;
}

/** The routing table: who serves which paths. GET / belongs to the counter (the Docker sample). */
export function upstreams(config: GatewayConfig): Upstream[] {
  const trim = (url: string) => url.replace(/\/$/, '');
  return [
    { name: 'counter', url: trim(config.COUNTER_URL), routes: ['/', '/counter', '/counter/*'], env: 'COUNTER_URL' },
    { name: 'jokes', url: trim(config.JOKES_URL), routes: ['/jokes', '/jokes/*'], env: 'JOKES_URL' },
    { name: 'images', url: trim(config.IMAGES_URL), routes: ['/images', '/images/*'], env: 'IMAGES_URL' },
  ];
}
