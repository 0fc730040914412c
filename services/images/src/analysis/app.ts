import { createService, postgresReadiness } from '@berth/service-kit';
import type pg from 'pg';
import { analysisStore } from '../db/analysis.ts';
import { NatsClient } from '../events/nats.ts';
import { subjectFilter } from '../events/stream.ts';
import { Maintenance } from '../maintenance.ts';
import type { Store } from '../storage/store.ts';
import type { WorkerConfig } from '../worker-config.ts';
import { Analyser } from './analyse.ts';
import { catchUpTask } from './catch-up.ts';
import { EventConsumer } from './consumer.ts';
import { forgetProcessedTask } from './forget.ts';
import { workerMetrics } from './metrics.ts';

/** The settings the worker reads. */
export type WorkerAppConfig = Pick<
  WorkerConfig,
  | 'LOG_LEVEL'
  | 'NATS_URL'
  | 'EVENTS_STREAM'
  | 'EVENTS_SUBJECT_PREFIX'
  | 'WORKER_CONSUMER'
  | 'WORKER_MAX_DELIVER'
  | 'WORKER_ACK_WAIT_MS'
  | 'WORKER_RETRY_DELAY_MS'
  | 'WORKER_CONCURRENCY'
  | 'WORKER_BATCH'
  | 'WORKER_FORGET_INTERVAL_MS'
  | 'WORKER_CATCH_UP_INTERVAL_MS'
  | 'WORKER_CATCH_UP_AFTER_MS'
  | 'MAX_PIXELS'
>;

/** What the worker is built from; tests pass a pool on their own database and a temp store. */
export interface WorkerDeps {
  pool: pg.Pool;
  store: Store;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The event consumer, for tests. */
    consumer: EventConsumer;
  }
}

/**
 * The images-worker: a small app with /healthz, /readyz (PostgreSQL with the analysis columns,
 * NATS, the consumer pulling) and /metrics, around a durable consumer that analyses every created
 * image. Consuming starts when the app is ready and stops, draining, when it closes.
 */
export function buildWorker(config: WorkerAppConfig, deps: WorkerDeps) {
  const { pool, store } = deps;
  // the checks read these once they exist
  let nats: NatsClient | undefined;
  let consumer: EventConsumer | undefined;
  const app = createService({
    name: 'images-worker',
    logLevel: config.LOG_LEVEL,
    readiness: {
      // not ready until the migrate step has added the analysis columns
      postgres: postgresReadiness(pool, 'SELECT phash FROM images LIMIT 0'),
      nats: async () => {
        if (!nats?.connected) throw new Error('not connected');
      },
      consumer: async () => {
        if (!consumer) throw new Error('not started');
        await consumer.check();
      },
    },
  });
  const client = new NatsClient({ url: config.NATS_URL, name: `images-worker ${config.WORKER_CONSUMER}` }, app.log);
  const analysis = analysisStore(pool);
  const analyser = new Analyser(analysis, store, {
    consumer: config.WORKER_CONSUMER,
    maxPixels: config.MAX_PIXELS,
    concurrency: config.WORKER_CONCURRENCY,
  });
  const metrics = workerMetrics(app.metrics, () => events.info());
  const events = new EventConsumer(
    client,
    {
      stream: config.EVENTS_STREAM,
      filterSubject: subjectFilter(config.EVENTS_SUBJECT_PREFIX, { type: 'created' }),
      durable: config.WORKER_CONSUMER,
      maxDeliver: config.WORKER_MAX_DELIVER,
      ackWaitMs: config.WORKER_ACK_WAIT_MS,
      retryDelayMs: config.WORKER_RETRY_DELAY_MS,
      batchSize: config.WORKER_BATCH,
    },
    (batch) => analyser.applyBatch(batch.map((event) => ({ eventId: event.id, imageId: event.imageId }))),
    metrics,
    app.log,
  );
  const maintenance = new Maintenance(
    [
      forgetProcessedTask(
        analysis,
        client,
        { stream: config.EVENTS_STREAM, consumer: config.WORKER_CONSUMER, everyMs: config.WORKER_FORGET_INTERVAL_MS },
        app.log,
      ),
      catchUpTask(
        { store: analysis, analyser, info: () => events.info(), counter: metrics.caughtUp },
        {
          consumer: config.WORKER_CONSUMER,
          everyMs: config.WORKER_CATCH_UP_INTERVAL_MS,
          afterMs: config.WORKER_CATCH_UP_AFTER_MS,
        },
        app.log,
      ),
    ],
    app.log,
  );
  nats = client;
  consumer = events;
  app.decorate('consumer', events);
  app.addHook('onReady', async () => {
    client.start();
    events.start();
    maintenance.start();
  });
  app.addHook('preClose', async () => {
    await maintenance.stop();
    await events.stop();
    await client.close();
  });
  app.addHook('onClose', async () => {
    await pool.end();
  });
  return app;
}
