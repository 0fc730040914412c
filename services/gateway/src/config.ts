import { baseEnv, urlEnv } from '@berth/service-kit';
import { type Static, Type } from 'typebox';

/** An upstream's base URL, or empty when that service is not deployed. */
function upstreamUrl(defaultValue: string) {
  return Type.String({ pattern: '^$|^https?://[^\\s/?#]+/?$', default: defaultValue });
}

const MiB = 1024 * 1024;

/** The gateway's environment. Every protection is on by default and has a switch, so it can be measured off. */
export const GatewayEnv = Type.Object({
  ...baseEnv(5000),
  NODE_ENV: Type.String({ default: 'development' }),
  COUNTER_URL: upstreamUrl('http://127.0.0.1:3001'),
  JOKES_URL: upstreamUrl('http://127.0.0.1:3002'),
  IMAGES_URL: upstreamUrl('http://127.0.0.1:3003'),
  UPSTREAM_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1024, default: 128 }),
  UPSTREAM_PIPELINING: Type.Integer({ minimum: 1, maximum: 100, default: 1 }),
  UPSTREAM_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 60_000, default: 2000 }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000 }),
  UPSTREAM_RETRY: Type.Boolean({ default: true }),
  // long-lived event streams: their own connections to the upstream, capped in all and per client
  EVENT_STREAMS_MAX: Type.Integer({ minimum: 1, maximum: 100_000, default: 512 }),
  EVENT_STREAMS_PER_CLIENT: Type.Integer({ minimum: 1, maximum: 10_000, default: 8 }),
  READY_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 10_000, default: 1000 }),
  // the services' OpenAPI documents are fetched at start and then this often; 0 only while one is missing
  OPENAPI_REFRESH_MS: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 300_000 }),

  // circuit breaker per upstream; 0 failures turns it off
  CIRCUIT_FAILURES: Type.Integer({ minimum: 0, maximum: 1000, default: 5 }),
  CIRCUIT_COOLDOWN_MS: Type.Integer({ minimum: 10, maximum: 600_000, default: 5000 }),

  // writes need a bearer token
  AUTH_ENABLED: Type.Boolean({ default: true }),
  API_TOKENS: Type.String({ default: '' }),
  API_TOKENS_FILE: Type.String({ default: '' }),
  // reads too need a token of the "read" scope (a server); off, reads are open (a laptop)
  READS_REQUIRE_TOKEN: Type.Boolean({ default: false }),
  // GET /metrics needs a token of the "admin" scope
  METRICS_REQUIRE_TOKEN: Type.Boolean({ default: false }),

  // per-client rate limit, counted in Redis so it holds across replicas
  RATE_LIMIT_ENABLED: Type.Boolean({ default: true }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 1_000_000_000, default: 1000 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 60_000 }),
  RATE_LIMIT_SYNC_MS: Type.Integer({ minimum: 10, maximum: 10_000, default: 100 }),
  RATE_LIMIT_KEY_PREFIX: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9:._-]*$', default: 'gateway:ratelimit:' }),
  REDIS_URL: urlEnv(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 10_000, default: 1000 }),
  TRUSTED_PROXIES: Type.String({ default: '' }),

  // request size and slow clients
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 0, maximum: 1024 * MiB, default: MiB }),
  UPLOAD_LIMIT_BYTES: Type.Integer({ minimum: 0, maximum: 4096 * MiB, default: 51 * MiB }),
  IMPORT_LIMIT_BYTES: Type.Integer({ minimum: 0, maximum: 1024 * 1024 * MiB, default: 2049 * MiB }),
  MAX_URL_BYTES: Type.Integer({ minimum: 256, maximum: 1024 * 1024, default: 8192 }),
  MAX_HEADER_BYTES: Type.Integer({ minimum: 1024, maximum: 1024 * 1024, default: 16 * 1024 }),
  HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 300_000 }),
  IDLE_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 60_000 }),
  KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 72_000 }),

  // browsers
  CORS_ORIGINS: Type.String({ default: '' }),
  SECURITY_HEADERS_ENABLED: Type.Boolean({ default: true }),

  // the web page at /ui/: the built folder; empty means web/dist of this checkout (or image)
  UI_DIR: Type.String({ default: '' }),
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
  /** Paths whose GET is a long-lived event stream: own connections, caps, no idle timeouts. */
  streams: string[];
  /** Paths whose answers may take long by their nature (made on request); a timeout there is no sign of a sick upstream. */
  slow?: RegExp;
  /** The variable that sets url, for messages. */
  env: string;
}

/** The routing table: who serves which paths. GET / belongs to the counter (the Docker sample). */
export function upstreams(config: GatewayConfig): Upstream[] {
  const trim = (url: string) => url.replace(/\/$/, '');
  return [
    {
      name: 'counter',
      url: trim(config.COUNTER_URL),
      routes: ['/', '/counter', '/counter/*'],
      streams: [],
      env: 'COUNTER_URL',
    },
    { name: 'jokes', url: trim(config.JOKES_URL), routes: ['/jokes', '/jokes/*'], streams: [], env: 'JOKES_URL' },
    {
      name: 'images',
      url: trim(config.IMAGES_URL),
      routes: ['/images', '/images/*'],
      streams: ['/images/events'],
      slow: /^\/images\/(?:thumbnails|[^/?]+\/thumbnail)(?:[/?]|$)/,
      env: 'IMAGES_URL',
    },
  ];
}
