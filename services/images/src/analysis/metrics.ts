import type { ConsumerInfo } from 'nats';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The worker's own series, beside the HTTP and process ones every service has. */
export interface WorkerMetrics {
  processed: Counter<'result'>;
  failed: Counter<'reason'>;
  redelivered: Counter;
  duration: Histogram<'result'>;
  batchSize: Histogram;
  caughtUp: Counter<'result'>;
}

/**
 * Registers the worker's metrics. The consumer's backlog comes from JetStream itself at scrape
 * time (one consumer-info request per scrape, shared by the three gauges), so it counts what every
 * replica has left, not only this one.
 */
export function workerMetrics(registry: Registry, info: () => Promise<ConsumerInfo | undefined>): WorkerMetrics {
  let asked: { at: number; info: Promise<ConsumerInfo | undefined> } | undefined;
  const current = () => {
    const now = Date.now();
    if (!asked || now - asked.at > 500) asked = { at: now, info: info() };
    return asked.info;
  };
  const fromInfo = (name: string, help: string, read: (info: ConsumerInfo) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const consumer = await current();
        // unknown while NATS is away: no sample rather than a misleading zero
        if (consumer) this.set(read(consumer));
        else this.reset();
      },
    });
  fromInfo(
    'images_worker_consumer_pending',
    'Messages on the stream the consumer has not been given yet',
    (c) => c.num_pending,
  );
  fromInfo(
    'images_worker_consumer_ack_pending',
    'Messages given to a worker and not acknowledged yet',
    (c) => c.num_ack_pending,
  );
  fromInfo(
    'images_worker_consumer_redelivered',
    'Messages given out more than once and not acknowledged yet',
    (c) => c.num_redelivered,
  );
  return {
    processed: new Counter({
      name: 'images_worker_messages_processed_total',
      help: 'Events acknowledged, by result: applied, undecodable (recorded as failed on the image), duplicate, gone',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    failed: new Counter({
      name: 'images_worker_messages_failed_total',
      help: 'Deliveries not completed, by reason: unavailable (a dependency; retried), error (retried), invalid (dropped)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    redelivered: new Counter({
      name: 'images_worker_messages_redelivered_total',
      help: 'Messages received that had been delivered before',
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'images_worker_processing_seconds',
      help: 'Time from receiving an event to its acknowledgement, by result',
      labelNames: ['result'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'images_worker_batch_events',
      help: 'Created events handled together in one batch (one lookup, one record statement)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
      registers: [registry],
    }),
    caughtUp: new Counter({
      name: 'images_worker_caught_up_total',
      help: 'Images analysed without their created event, which never reached the worker, by result',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
  };
}
