import { baseEnv } from '@berth/service-kit';
import { type Static, Type } from 'typebox';
import { DatabaseEnv, ImagesEnv } from './config.ts';

// the settings the worker shares with the images service, read the same way
const shared = ImagesEnv.properties;

/**
 * The images-worker's environment: the same database, volume and stream as the images service,
 * plus how its durable consumer behaves. Several replicas with the same WORKER_CONSUMER share the work.
 */
export const WorkerEnv = Type.Object({
  ...baseEnv(3004),
  ...DatabaseEnv,
  IMAGES_DIR: shared.IMAGES_DIR,
  NATS_URL: shared.NATS_URL,
  EVENTS_STREAM: shared.EVENTS_STREAM,
  EVENTS_SUBJECT_PREFIX: shared.EVENTS_SUBJECT_PREFIX,
  WORKER_CONSUMER: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'images-worker' }),
  // deliveries of one message before JetStream gives up on it; a transient outage longer than the
  // backoff schedule adds up to leaves the image unanalysed rather than retried forever
  WORKER_MAX_DELIVER: Type.Integer({ minimum: 2, maximum: 100, default: 8 }),
  // how long a delivered message may go unacknowledged before JetStream offers it again; the
  // later redeliveries wait twice as long each time (the consumer's backoff)
  WORKER_ACK_WAIT_MS: Type.Integer({ minimum: 1000, maximum: 3600_000, default: 30_000 }),
  // the first delay after a transient failure (database down); doubles per delivery, capped at a minute
  WORKER_RETRY_DELAY_MS: Type.Integer({ minimum: 10, maximum: 600_000, default: 1000 }),
  // files of a batch read and decoded at once by one process: more than the core count keeps the
  // disk and sharp's threads busy while JavaScript works on the ones already read
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 64, default: 8 }),
  // created events handled together: one lookup, one record statement and a round of acks each
  WORKER_BATCH: Type.Integer({ minimum: 1, maximum: 1000, default: 256 }),
  // how often marks of applied events the stream no longer holds are removed; 0 keeps them all
  WORKER_FORGET_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 24 * 3600_000, default: 3600_000 }),
  // how often images whose created event never reached the worker are looked for and analysed; 0 never
  WORKER_CATCH_UP_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 24 * 3600_000, default: 300_000 }),
  // how old such an image must be before it is analysed without its event
  WORKER_CATCH_UP_AFTER_MS: Type.Integer({ minimum: 1000, maximum: 30 * 24 * 3600_000, default: 600_000 }),
  MAX_PIXELS: shared.MAX_PIXELS,
  DATABASE_POOL_MAX: Type.Integer({ minimum: 2, maximum: 100, default: 5 }),
  DATABASE_CONNECT_TIMEOUT_MS: shared.DATABASE_CONNECT_TIMEOUT_MS,
  DATABASE_STATEMENT_TIMEOUT_MS: shared.DATABASE_STATEMENT_TIMEOUT_MS,
});

/** Validated worker configuration. */
export type WorkerConfig = Static<typeof WorkerEnv>;
