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
  concurrency: number;
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

/** Applies one event; throws for transient trouble only. */
export type EventHandler = (event: EventMessage) => Promise<AnalysisResult>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RETRY_CAP_MS = 60_000;
const RESTART_MS = 1000;

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
 * hands each message to one of them). Explicit acks after the effect commits; a transient failure
 * is nak'ed with a growing delay, a message that is not an event is terminated, and JetStream
 * stops after maxDeliver deliveries. The stream is the images service's to create: until it
 * exists the consumer waits and reports not ready.
 */
export class EventConsumer {
  readonly #nats: NatsSource;
  readonly #settings: ConsumerSettings;
  readonly #handle: EventHandler;
  readonly #metrics: WorkerMetrics;
  readonly #log: FastifyBaseLogger;
  readonly #abort = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
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
   * Stops pulling, lets the messages being processed finish and be acked, and hands the ones
   * fetched but not started back to JetStream at once (nak), so another replica takes them.
   */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#ready = false;
    this.#messages?.stop();
    await this.#loop;
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
        // a small batch: fetched messages wait for a free slot with their ack timers running
        this.#messages = await consumer.consume({ max_messages: this.#settings.concurrency });
        this.#ready = true;
        this.#log.info({ stream: this.#settings.stream, consumer: this.#settings.durable }, 'consuming image events');
        for await (const msg of this.#messages) {
          while (this.#inFlight.size >= this.#settings.concurrency) await Promise.race(this.#inFlight);
          if (signal.aborted) {
            this.#log.debug({ seq: msg.seq }, 'stopping: handing an event back');
            msg.nak();
            continue;
          }
          const work = this.#process(msg).finally(() => this.#inFlight.delete(work));
          this.#inFlight.add(work);
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

  async #process(msg: JsMsg): Promise<void> {
    const started = performance.now();
    if (msg.redelivered) this.#metrics.redelivered.inc();
    const event = parseEvent(msg.data);
    if (!event) {
      this.#log.error({ subject: msg.subject, seq: msg.seq }, 'not an image event; dropping it');
      this.#metrics.failed.inc({ reason: 'invalid' });
      // no reason text: servers before 2.10 ignore a +TERM that carries one
      msg.term();
      return;
    }
    if (event.type !== 'created') {
      msg.ack();
      return;
    }
    // tells JetStream the message is still being worked on, so a slow decode on a busy machine is
    // not mistaken for a dead worker and handed to another one meanwhile
    const working = setInterval(() => msg.working(), Math.max(500, this.#settings.ackWaitMs / 3));
    try {
      const result = await this.#handle(event);
      await msg.ackAck().catch((err: Error) => {
        // the effect is committed; a redelivery finds it in processed_events
        this.#log.warn({ err: err.message, event: event.id }, 'ack not confirmed');
      });
      this.#log.debug({ event: event.id, seq: msg.seq, delivery: msg.info.deliveryCount, result }, 'event done');
      this.#metrics.processed.inc({ result });
      this.#metrics.duration.observe({ result }, (performance.now() - started) / 1000);
      if (result === 'undecodable') this.#log.warn({ image: event.imageId }, 'image could not be decoded');
    } catch (err) {
      const delivery = msg.info.deliveryCount;
      const delay = retryDelay(this.#settings.retryDelayMs, delivery);
      const unavailable = isPostgresUnavailable((err as { cause?: unknown }).cause ?? err);
      this.#metrics.failed.inc({ reason: unavailable ? 'unavailable' : 'error' });
      const last = delivery >= this.#settings.maxDeliver;
      const fields = { err: (err as Error).message, event: event.id, image: event.imageId, delivery };
      if (last) this.#log.error(fields, 'event failed on its last delivery; the image stays unanalysed');
      else this.#log.warn({ ...fields, retryInMs: delay }, 'event failed; retrying later');
      msg.nak(delay);
    } finally {
      clearInterval(working);
    }
  }
}
