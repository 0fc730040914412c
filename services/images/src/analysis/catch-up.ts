import type { FastifyBaseLogger } from 'fastify';
import type { ConsumerInfo } from 'nats';
import type { Counter } from 'prom-client';
import type { AnalysisStore } from '../db/analysis.ts';
import { type Task, unhurriedStart } from '../maintenance.ts';
import type { Analyser } from './analyse.ts';

/** Images taken per query and analysed as one batch, as the consumer's batches are by default. */
const CATCH_UP_BATCH = 256;
/** Batches per run at most, so a run (and a shutdown waiting for it) stays short. */
const BATCHES_PER_RUN = 10;

/** What the catch-up works with. */
export interface CatchUpDeps {
  store: Pick<AnalysisStore, 'stranded'>;
  analyser: Pick<Analyser, 'applyBatch'>;
  /** The consumer's state on the server; undefined while it cannot be read. */
  info: () => Promise<ConsumerInfo | undefined>;
  counter: Counter<'result'>;
}

/**
 * Analyses images whose created event never reached the worker: JetStream gave up on it after
 * its last delivery (a long outage), or the stream lost it (its limits, a stream made again).
 * It runs only while the consumer has nothing on its way (no message pending or unacknowledged),
 * for images older than `afterMs` with every event of theirs sent, so an event still to come is
 * waited for rather than raced. The effect is keyed like the event's own: a created event's id is
 * its image's id, so whichever comes first applies it and the other finds it done.
 */
export function catchUpTask(
  deps: CatchUpDeps,
  options: { consumer: string; everyMs: number; afterMs: number },
  log: FastifyBaseLogger,
): Task {
  return {
    name: 'catch-up',
    everyMs: options.everyMs,
    firstAfterMs: unhurriedStart(options.everyMs),
    async run() {
      let analysed = 0;
      for (let batch = 0; batch < BATCHES_PER_RUN; batch++) {
        const info = await deps.info();
        if (!info || info.num_pending > 0 || info.num_ack_pending > 0) break;
        const ids = await deps.store.stranded(options.consumer, options.afterMs, CATCH_UP_BATCH);
        const results = ids.length
          ? await deps.analyser.applyBatch(ids.map((id) => ({ eventId: id, imageId: id })))
          : [];
        for (const result of results) deps.counter.inc({ result });
        analysed += ids.length;
        if (ids.length < CATCH_UP_BATCH) break;
      }
      if (analysed > 0) log.warn({ images: analysed }, 'analysed images whose created events never reached the worker');
      return analysed;
    },
  };
}
