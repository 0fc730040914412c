import { baseEnv, databaseEnv, urlEnv } from '@berth/service-kit';
import { type Static, Type } from 'typebox';

/** Where the image metadata lives (the password, if any, from DATABASE_PASSWORD_FILE); the default is the local server with trust auth. */
export const DatabaseEnv = databaseEnv('images');

const MiB = 1024 * 1024;

/** The images service's environment. Every limit has a default that is safe on a small machine. */
export const ImagesEnv = Type.Object({
  ...baseEnv(3003),
  ...DatabaseEnv,
  IMAGES_DIR: Type.String({ minLength: 1, default: './data/images' }),
  MAX_UPLOAD_BYTES: Type.Integer({ minimum: 1024, maximum: 4096 * MiB, default: 50 * MiB }),
  MAX_IMPORT_BYTES: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * MiB, default: 2048 * MiB }),
  MAX_PIXELS: Type.Integer({ minimum: 1, maximum: 1_000_000_000, default: 50_000_000 }),
  // decode cost: the memory one image's pixels may take, decodes at once, a request's wait and a decode's time
  MAX_DECODED_BYTES: Type.Integer({ minimum: 1024, maximum: 2 ** 40, default: 200_000_000 }),
  DECODE_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 2 }),
  DECODE_WAIT_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 5000 }),
  DECODE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 15_000 }),
  // thumbnails of larger images are made by the images-worker only, never on request
  THUMBNAIL_ON_DEMAND_PIXELS: Type.Integer({ minimum: 1, maximum: 1_000_000_000, default: 16_000_000 }),
  // /readyz says "degraded" (and interrupted imports wait) while the volume has less free than this
  VOLUME_MIN_FREE_BYTES: Type.Integer({ minimum: 0, maximum: 2 ** 50, default: 512 * MiB }),
  SWEEP_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600_000, default: 3600_000 }),
  SWEEP_GRACE_MS: Type.Integer({ minimum: 0, maximum: 30 * 24 * 3600_000, default: 3600_000 }),
  IMPORT_STALE_MS: Type.Integer({ minimum: 1000, maximum: 3600_000, default: 15_000 }),
  // an interrupted import is resumed by itself until it has run this many times; then it waits for a retry
  IMPORT_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
  IMPORT_BATCH: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  IMPORT_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 64 }),
  FILE_REF_TTL_MS: Type.Integer({ minimum: 0, maximum: 3600_000, default: 10_000 }),
  DATABASE_POOL_MAX: Type.Integer({ minimum: 2, maximum: 100, default: 10 }),
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 30000, default: 1000 }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60000, default: 5000 }),
  // events: the outbox relay, the JetStream stream it publishes to and the live feed
  NATS_URL: urlEnv(['nats', 'tls'], 'nats://127.0.0.1:4222'),
  EVENTS_STREAM: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'IMAGES' }),
  EVENTS_SUBJECT_PREFIX: Type.String({
    pattern: '^[A-Za-z0-9_-]{1,64}(\\.[A-Za-z0-9_-]{1,64}){0,3}$',
    default: 'images',
  }),
  EVENTS_DUPLICATE_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 7 * 24 * 3600_000, default: 120_000 }),
  EVENTS_MAX_AGE_MS: Type.Integer({ minimum: 0, maximum: 365 * 24 * 3600_000, default: 7 * 24 * 3600_000 }),
  EVENTS_MAX_BYTES: Type.Integer({ minimum: -1, maximum: 2 ** 50, default: 1024 * MiB }),
  EVENTS_REPLICAS: Type.Integer({ minimum: 1, maximum: 5, default: 1 }),
  EVENTS_HEARTBEAT_MS: Type.Integer({ minimum: 1000, maximum: 300_000, default: 15_000 }),
  // what one open feed may send per second (a replay from ?since=0 is paced to it); 0: no limit
  EVENTS_FEED_BYTES_PER_S: Type.Integer({ minimum: 0, maximum: 2 ** 40, default: 512 * 1024 }),
  OUTBOX_BATCH: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  OUTBOX_POLL_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 250 }),
  OUTBOX_PUBLISH_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 8000, default: 5000 }),
  OUTBOX_RETENTION_MS: Type.Integer({ minimum: 0, maximum: 30 * 24 * 3600_000, default: 24 * 3600_000 }),
  OUTBOX_PRUNE_INTERVAL_MS: Type.Integer({ minimum: 1000, maximum: 24 * 3600_000, default: 60_000 }),
  // the scheduled inbox (off while INBOX_DIR is empty); durations are parsed in src/inbox/settings.ts
  INBOX_DIR: Type.String({ default: '' }),
  INBOX_SCAN_INTERVAL: Type.String({ default: '30s' }),
  INBOX_SETTLE: Type.String({ default: '5s' }),
  INBOX_CLAIM_TIMEOUT: Type.String({ default: '10m' }),
  INBOX_KEEP: Type.String({ default: '7d' }),
  INBOX_MAX_FILES: Type.Integer({ minimum: 1, maximum: 100_000, default: 200 }),
  INBOX_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
});

/** Validated images configuration. */
export type ImagesConfig = Static<typeof ImagesEnv>;

/** The migrate command's environment: only the database and how long to wait for it. */
export const MigrateEnv = Type.Object({
  LOG_LEVEL: baseEnv(3003).LOG_LEVEL,
  ...DatabaseEnv,
  MIGRATE_WAIT_MS: Type.Integer({ minimum: 0, maximum: 600000, default: 60000 }),
});

/** Validated migrate configuration. */
export type MigrateConfig = Static<typeof MigrateEnv>;
