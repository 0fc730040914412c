import { access, constants } from 'node:fs/promises';
import { advisory, createService, postgresReadiness, underPrefix } from '@berth/service-kit';
import fastifyMultipart from '@fastify/multipart';
import type pg from 'pg';
import type { ImagesConfig } from './config.ts';
import { imageReader } from './db/images.ts';
import { similarityReader } from './db/similarity.ts';
import { decoding } from './decoding.ts';
import { type Events, natsReadiness, registerEvents } from './events/index.ts';
import type { EventsOptions } from './events/settings.ts';
import { FileCache } from './file-cache.ts';
import { ImportRunner } from './imports/runner.ts';
import { Inbox } from './inbox/inbox.ts';
import { inboxRoutes } from './inbox/routes.ts';
import { type InboxConfig, inboxSettings } from './inbox/settings.ts';
import { importWatchdog, inboxPrune, inboxScan, Maintenance, volumeSweep } from './maintenance.ts';
import { RefCache } from './ref-cache.ts';
import { datasetRoutes } from './routes/datasets.ts';
import { fileRoutes } from './routes/files.ts';
import { imageRoutes } from './routes/images.ts';
import { importRoutes } from './routes/imports.ts';
import { leakRoutes } from './routes/leaks.ts';
import { similarRoutes } from './routes/similar.ts';
import { thumbnailRoutes } from './routes/thumbnails.ts';
import { uploadRoutes } from './routes/upload.ts';
import { volumeSpace } from './storage/free-space.ts';
import type { Store } from './storage/store.ts';
import { Thumbnails } from './thumbnails.ts';

/** What the images service is built from; tests pass a pool on their own database and a temp store. */
export interface ImagesDeps {
  pool: pg.Pool;
  store: Store;
  /** NATS, stream and relay settings; without them event rows wait in the outbox and the feed answers 503. */
  events?: EventsOptions;
}

/** The settings buildApp reads. */
export type AppConfig = Pick<
  ImagesConfig,
  | 'LOG_LEVEL'
  | 'MAX_UPLOAD_BYTES'
  | 'MAX_IMPORT_BYTES'
  | 'MAX_PIXELS'
  | 'SWEEP_INTERVAL_MS'
  | 'SWEEP_GRACE_MS'
  | 'IMPORT_STALE_MS'
  | 'IMPORT_MAX_ATTEMPTS'
  | 'VOLUME_MIN_FREE_BYTES'
  | 'MAX_DECODED_BYTES'
  | 'DECODE_CONCURRENCY'
  | 'DECODE_WAIT_MS'
  | 'DECODE_TIMEOUT_MS'
  | 'THUMBNAIL_ON_DEMAND_PIXELS'
  | 'IMPORT_BATCH'
  | 'IMPORT_CONCURRENCY'
  | 'FILE_REF_TTL_MS'
> &
  InboxConfig;

declare module 'fastify' {
  interface FastifyInstance {
    /** The import job runner, for tests and shutdown. */
    imports: ImportRunner;
  }
}

/** Image bodies are not parsed: the upload route streams them to disk itself. */
function streamImageBodies(app: ReturnType<typeof createService>) {
  app.addContentTypeParser(/^image\//i, (_request, payload, done) => done(null, payload));
}

/** Builds the images app; the pool is closed with it. */
export function buildApp(config: AppConfig, deps: ImagesDeps) {
  const { pool, store } = deps;
  let events: Events | undefined;
  const app = createService({
    name: 'images',
    logLevel: config.LOG_LEVEL,
    openapi: {
      title: 'berth images',
      description: 'A content-addressed image store for ML data sets, queryable by label, split and tag',
      route: '/images/openapi.json',
      include: underPrefix('/images'),
    },
    readiness: {
      // not ready until the migrate step has created the tables
      postgres: postgresReadiness(pool, 'SELECT 1 FROM images LIMIT 0'),
      volume: () => access(store.root, constants.W_OK),
      space: advisory(() => spaceCheck()),
      ...(deps.events ? { nats: natsReadiness(() => events) } : {}),
    },
  });
  const space = volumeSpace(store.root, config.VOLUME_MIN_FREE_BYTES, app.metrics);
  const spaceCheck = () => space();
  streamImageBodies(app);
  app.register(fastifyMultipart);
  const images = imageReader(pool);
  decoding.configure({
    maxDecodedBytes: config.MAX_DECODED_BYTES,
    concurrency: config.DECODE_CONCURRENCY,
    waitMs: config.DECODE_WAIT_MS,
    timeoutMs: config.DECODE_TIMEOUT_MS,
  });
  const thumbnails = new Thumbnails(store, config.MAX_PIXELS, { onDemandPixels: config.THUMBNAIL_ON_DEMAND_PIXELS });
  const refs = new RefCache(config.FILE_REF_TTL_MS);
  const runner = new ImportRunner(
    pool,
    store,
    {
      batch: config.IMPORT_BATCH,
      concurrency: config.IMPORT_CONCURRENCY,
      maxPixels: config.MAX_PIXELS,
      maxImageBytes: config.MAX_UPLOAD_BYTES,
      staleMs: config.IMPORT_STALE_MS,
      maxAttempts: config.IMPORT_MAX_ATTEMPTS,
      minFreeBytes: config.VOLUME_MIN_FREE_BYTES,
    },
    app.log,
  );
  app.decorate('imports', runner);
  events = registerEvents(app, pool, deps.events);
  app.register(async (scope) => {
    uploadRoutes(scope, pool, store, { maxUploadBytes: config.MAX_UPLOAD_BYTES, maxPixels: config.MAX_PIXELS });
    imageRoutes(scope, pool, images, store, refs);
    fileRoutes(scope, images, store, thumbnails, new FileCache(64 * 1024 * 1024), refs);
    thumbnailRoutes(scope, pool, store, thumbnails);
    datasetRoutes(scope, images, store);
    const similarity = similarityReader(pool);
    similarRoutes(scope, similarity);
    leakRoutes(scope, images, similarity);
    importRoutes(scope, pool, store, runner, {
      maxImportBytes: config.MAX_IMPORT_BYTES,
      maxImageBytes: config.MAX_UPLOAD_BYTES,
      maxPixels: config.MAX_PIXELS,
    });
  });
  const inboxed = inboxSettings(config);
  const inbox = inboxed && new Inbox(pool, store, inboxed.options, app.metrics, app.log.child({ task: 'inbox' }));
  app.register(async (scope) => inboxRoutes(scope, inbox || undefined));
  // the watchdog also runs at start-up, so jobs cut off by a restart are marked at once
  const maintenance = new Maintenance(
    [
      importWatchdog(runner, Math.max(1000, Math.floor(config.IMPORT_STALE_MS / 2))),
      volumeSweep(pool, store, { everyMs: config.SWEEP_INTERVAL_MS, graceMs: config.SWEEP_GRACE_MS }, app.log),
      ...(inboxed && inbox ? [inboxScan(inbox, inboxed.everyMs), inboxPrune(inbox, inboxed.keepMs)] : []),
    ],
    app.log,
  );
  app.addHook('onReady', async () => {
    await store.init();
    maintenance.start();
  });
  app.addHook('preClose', async () => {
    await maintenance.stop();
    await inbox?.close();
    await runner.close();
    await thumbnails.idle();
  });
  app.addHook('onClose', async () => {
    await pool.end();
  });
  return app;
}
