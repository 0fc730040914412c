import { isPostgresUnavailable } from '@berth/service-kit';
import type { FastifyBaseLogger } from 'fastify';
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  type NatsConnection,
  nanos,
} from 'nats';
import type { AnalysisResult } from './analyse.ts';
import type { WorkerMetrics } from './metrics.ts';

/** How the durable consumer is set up and paced. */
export interface ConsumerSettings {
  stream: string;
  /** The subjects it takes, e.g. `images.created.*`. */
  filterSubject: string;
  durable: string;
  maxDeliver: number;
  ackWaitMs: number;
  /** The first delay after a transient failure; doubles with each delivery, capped at a minute. */
  retryDelayMs: number;
  /** Events handled together: one lookup, one record statement and one round of acks per batch. */
  batchSize: number;
}

/** The part of the NATS connection helper the consumer needs. */
export interface NatsSource {
  ready(signal?: AbortSignal): Promise<NatsConnection>;
  readonly connection: NatsConnection | undefined;
}

/** The fields of an event message the worker reads. */
export interface EventMessage {
  id: string;
  type: string;
  imageId: string;
}

/** Applies a batch of events, giving each one's result in order; throws for transient trouble only. */
export type EventHandler = (events: EventMessage[]) => Promise<AnalysisResult[]>;

/** A created event received and waiting for its batch. */
interface Received {
  msg: JsMsg;
  event: EventMessage;
  receivedAt: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RETRY_CAP_MS = 60_000;
const RESTART_MS = 1000;
/** How long a batch waits for more events before it goes with fewer than batchSize. */
const LINGER_MS = 20;
/** Batches handled at once: one is analysed while the one before is written. */
const BATCHES_IN_FLIGHT = 2;
/** How long a pull request waits on the server (decision 0112). */
const PULL_EXPIRES_MS = 5000;

/** The event in a message body, or undefined when the body is not one (a message no delivery will fix). */
export function parseEvent(data: Uint8Array): EventMessage | undefined {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  const { id, type, imageId } = (body ?? {}) as Record<string, unknown>;
  if (typeof id !== 'string' || !UUID.test(id)) return undefined;
  if (typeof imageId !== 'string' || !UUID.test(imageId)) return undefined;
  if (type !== 'created' && type !== 'updated' && type !== 'deleted') return undefined;
  return { id: id.toLowerCase(), type, imageId: imageId.toLowerCase() };
}

/**
 * The redelivery schedule after an ack timeout (a worker that died holding the message): the ack
 * wait, then doubling, capped at eight times it; one entry fewer than the deliveries allowed, as
 * JetStream requires.
 */
export function ackBackoff(ackWaitMs: number, maxDeliver: number): number[] {
  return Array.from({ length: maxDeliver - 1 }, (_, i) => Math.min(ackWaitMs * 2 ** i, ackWaitMs * 8));
}

/** The delay before the next try after a transient failure on delivery `delivery` (1-based). */
export function retryDelay(retryDelayMs: number, delivery: number): number {
  return Math.min(retryDelayMs * 2 ** Math.max(0, delivery - 1), RETRY_CAP_MS);
}

function consumerConfig(settings: ConsumerSettings): Partial<ConsumerConfig> {
  return {
    durable_name: settings.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: settings.filterSubject,
    max_deliver: settings.maxDeliver,
    ack_wait: nanos(settings.ackWaitMs),
    backoff: ackBackoff(settings.ackWaitMs, settings.maxDeliver).map(nanos),
  };
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number } };
  return e.code === '404' || e.api_error?.err_code === 10014 || e.api_error?.err_code === 10059;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * A durable pull consumer on the events stream that several worker processes share (JetStream
 * hands each message to one of them). Created events are handled in batches of up to batchSize
 * (a batch goes when full or LINGER_MS after its first event), explicitly acked after their
 * effects commit; a batch that fails for a transient reason is nak'ed with a growing delay, a
 * message that is not an event is terminated, and JetStream stops after maxDeliver deliveries.
 * The stream is the images service's to create: until it exists the consumer waits and reports
 * not ready.
 */
export class EventConsumer {
  readonly #nats: NatsSource;
  readonly #settings: ConsumerSettings;
  readonly #handle: EventHandler;
  readonly #metrics: WorkerMetrics;
  readonly #log: FastifyBaseLogger;
  readonly #abort = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  #pending: Received[] = [];
  #linger: NodeJS.Timeout | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #ready = false;
  #problem = 'not started';

  constructor(
    nats: NatsSource,
    settings: ConsumerSettings,
    handle: EventHandler,
    metrics: WorkerMetrics,
    log: FastifyBaseLogger,
  ) {
    this.#nats = nats;
    this.#settings = settings;
    this.#handle = handle;
    this.#metrics = metrics;
    this.#log = log;
  }

  /** Starts pulling in the background; returns at once. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** For /readyz: resolves while messages are being pulled, else rejects saying why not. */
  async check(): Promise<void> {
    if (!this.#ready) throw new Error(this.#problem);
  }

  /** The consumer's state on the server (pending, ack pending, redelivered), or undefined when it cannot be read now. */
  async info(): Promise<ConsumerInfo | undefined> {
    const nc = this.#nats.connection;
    if (!nc) return undefined;
    try {
      const jsm = await nc.jetstreamManager({ timeout: 1000 });
      return await jsm.consumers.info(this.#settings.stream, this.#settings.durable);
    } catch {
      return undefined;
    }
  }

  /**
   * Stops pulling, lets the batches being processed finish and be acked, and hands the events
   * fetched but not started back to JetStream at once (nak), so another replica takes them.
   */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#ready = false;
    this.#messages?.stop();
    await this.#loop;
    clearTimeout(this.#linger);
    for (const { msg } of this.#pending.splice(0)) msg.nak();
    await Promise.allSettled([...this.#inFlight]);
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        const nc = await this.#nats.ready(signal);
        await this.#ensureConsumer(nc);
        const consumer = await nc.jetstream().consumers.get(this.#settings.stream, this.#settings.durable);
        if (signal.aborted) break;
        // two batches on their way: one is handled while the next arrives. Pull requests expire
        // every PULL_EXPIRES_MS (heartbeats at half that), so one lost with a stream leader that
        // died is noticed and made again within seconds, not the half minute of the default
        this.#messages = await consumer.consume({
          max_messages: this.#settings.batchSize * BATCHES_IN_FLIGHT,
          expires: PULL_EXPIRES_MS,
        });
        this.#ready = true;
        this.#log.info({ stream: this.#settings.stream, consumer: this.#settings.durable }, 'consuming image events');
        for await (const msg of this.#messages) {
          if (signal.aborted) {
            this.#log.debug({ seq: msg.seq }, 'stopping: handing an event back');
            msg.nak();
            continue;
          }
          if (msg.redelivered) this.#metrics.redelivered.inc();
          const event = parseEvent(msg.data);
          if (!event) {
            this.#log.error({ subject: msg.subject, seq: msg.seq }, 'not an image event; dropping it');
            this.#metrics.failed.inc({ reason: 'invalid' });
            // no reason text: servers before 2.10 ignore a +TERM that carries one
            msg.term();
            continue;
          }
          if (event.type !== 'created') {
            msg.ack();
            continue;
          }
          this.#pending.push({ msg, event, receivedAt: performance.now() });
          if (this.#pending.length >= this.#settings.batchSize) await this.#dispatch();
          else this.#linger ??= setTimeout(() => void this.#dispatch(), LINGER_MS);
        }
        const reason = await this.#messages.closed();
        if (reason && !signal.aborted) throw reason;
        if (!signal.aborted) throw new Error('The message stream ended');
      } catch (err) {
        if (signal.aborted) break;
        this.#problem = isNotFound(err)
          ? `stream "${this.#settings.stream}" does not exist yet`
          : `consumer unavailable: ${(err as Error).message}`;
        this.#log.warn({ err: (err as Error).message }, `not consuming: ${this.#problem}; retrying`);
      }
      this.#ready = false;
      await sleep(RESTART_MS, signal);
    }
    this.#problem = 'stopped';
  }

  /** Creates the durable consumer, or brings its settings up to date; idempotent across replicas. */
  async #ensureConsumer(nc: NatsConnection): Promise<void> {
    const jsm = await nc.jetstreamManager();
    const wanted = consumerConfig(this.#settings);
    let info: ConsumerInfo | undefined;
    try {
      info = await jsm.consumers.info(this.#settings.stream, this.#settings.durable);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!info) {
      await jsm.consumers.add(this.#settings.stream, wanted);
      return;
    }
    const current = info.config;
    const same =
      current.filter_subject === wanted.filter_subject &&
      current.max_deliver === wanted.max_deliver &&
      current.ack_wait === wanted.ack_wait &&
      JSON.stringify(current.backoff ?? []) === JSON.stringify(wanted.backoff);
    if (!same) {
      const { durable_name: _name, deliver_policy: _policy, ack_policy: _ack, ...changes } = wanted;
      await jsm.consumers.update(this.#settings.stream, this.#settings.durable, changes);
    }
  }

  /** Starts handling the events waiting, once fewer than BATCHES_IN_FLIGHT batches are being handled. */
  async #dispatch(): Promise<void> {
    clearTimeout(this.#linger);
    this.#linger = undefined;
    while (this.#inFlight.size >= BATCHES_IN_FLIGHT) await Promise.race(this.#inFlight);
    const batch = this.#pending.splice(0, this.#settings.batchSize);
    if (batch.length === 0) return;
    if (this.#pending.length > 0) this.#linger = setTimeout(() => void this.#dispatch(), 0);
    const work = this.#process(batch).finally(() => this.#inFlight.delete(work));
    this.#inFlight.add(work);
  }

  async #process(batch: Received[]): Promise<void> {
    this.#metrics.batchSize.observe(batch.length);
    // tells JetStream the messages are still being worked on, so a slow batch on a busy machine is
    // not mistaken for a dead worker and handed to another one meanwhile
    const working = setInterval(
      () => {
        for (const { msg } of batch) msg.working();
      },
      Math.max(500, this.#settings.ackWaitMs / 3),
    );
    try {
      const results = await this.#handle(batch.map((received) => received.event));
      const now = performance.now();
      batch.forEach(({ msg, event, receivedAt }, i) => {
        const result = results[i] as AnalysisResult;
        // the effect is committed; should the ack be lost, a redelivery finds it in processed_events
        msg.ack();
        this.#metrics.processed.inc({ result });
        this.#metrics.duration.observe({ result }, (now - receivedAt) / 1000);
        if (result === 'undecodable') this.#log.warn({ image: event.imageId }, 'image could not be decoded');
      });
      this.#log.debug({ events: batch.length }, 'batch done');
    } catch (err) {
      const unavailable = isPostgresUnavailable((err as { cause?: unknown }).cause ?? err);
      let last = 0;
      for (const { msg } of batch) {
        const delivery = msg.info.deliveryCount;
        this.#metrics.failed.inc({ reason: unavailable ? 'unavailable' : 'error' });
        if (delivery >= this.#settings.maxDeliver) last++;
        msg.nak(retryDelay(this.#settings.retryDelayMs, delivery));
      }
      const fields = { err: (err as Error).message, events: batch.length, first: batch[0]?.event.id };
      this.#log.warn(fields, 'batch failed; retrying later');
      if (last > 0) {
        this.#log.error(
          { ...fields, images: last },
          'events failed on their last delivery; their images stay unanalysed',
        );
      }
    } finally {
      clearInterval(working);
    }
  }
}
