import type { FastifyBaseLogger } from 'fastify';
import type { AnalysisStore } from '../db/analysis.ts';
import type { NatsClient } from '../events/nats.ts';
import { type Task, unhurriedStart } from '../maintenance.ts';

/** Marks removed per statement, so one run never holds many row locks or a long transaction. */
export const FORGET_BATCH = 5000;

/**
 * Keeps processed_events from growing forever. A consumer's mark for an event is needed only while
 * that event can still reach it: while the stream keeps the message (its `max_age`, read from the
 * stream itself so it is never out of step) and while the event's outbox row is unsent (the relay
 * could publish it again). Older marks are removed in batches; a stream without a maximum age
 * keeps every message, so then nothing is removed. NATS unreachable: skipped until the next run.
 */
export function forgetProcessedTask(
  store: Pick<AnalysisStore, 'forgetProcessed'>,
  client: Pick<NatsClient, 'connection'>,
  options: { stream: string; consumer: string; everyMs: number },
  log: FastifyBaseLogger,
): Task {
  return {
    name: 'forget-processed-events',
    everyMs: options.everyMs,
    firstAfterMs: unhurriedStart(options.everyMs),
    async run() {
      const nc = client.connection;
      if (!nc) return 0;
      const jsm = await nc.jetstreamManager({ timeout: 2000 });
      const keptMs = (await jsm.streams.info(options.stream)).config.max_age / 1e6;
      if (!(keptMs > 0)) return 0;
      let forgotten = 0;
      for (;;) {
        const removed = await store.forgetProcessed(options.consumer, keptMs, FORGET_BATCH);
        forgotten += removed;
        if (removed < FORGET_BATCH) break;
      }
      if (forgotten > 0) log.info({ forgotten, keptMs }, 'removed marks of events the stream no longer holds');
      return forgotten;
    },
  };
}
