import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { dependencyUnavailable } from '@berth/service-kit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Consumer, type ConsumerMessages, DeliverPolicy, type JsMsg, type OrderedConsumerOptions } from 'nats';
import type { NatsClient } from './nats.ts';
import type { EventType } from './outbox.ts';
import { type StreamSettings, subjectFilter } from './stream.ts';

/** Where a feed starts and what it lets through. */
export interface FeedRequest {
  /** The last stream sequence the client has; the feed starts after it. Undefined: new events only. */
  after?: number;
  type?: EventType;
  dataset?: string;
}

/** How long opening a feed may wait for NATS before answering 503. */
const OPEN_TIMEOUT_MS = 2000;

/**
 * Live event feeds as Server-Sent Events: one ordered (ephemeral) JetStream consumer per client,
 * filtered on the server by subject, deleted when the client leaves or the service stops.
 */
export class EventFeed {
  readonly #nats: NatsClient | undefined;
  readonly #stream: StreamSettings | undefined;
  readonly #heartbeatMs: number;
  readonly #bytesPerSecond: number;
  readonly #open = new Set<ConsumerMessages>();
  #closing = false;

  constructor(
    nats: NatsClient | undefined,
    stream: StreamSettings | undefined,
    heartbeatMs: number,
    bytesPerSecond = 0,
  ) {
    this.#nats = nats;
    this.#stream = stream;
    this.#heartbeatMs = heartbeatMs;
    this.#bytesPerSecond = bytesPerSecond;
  }

  /** How many feeds are open now. */
  get clients(): number {
    return this.#open.size;
  }

  /**
   * Opens the consumer (503 at once when NATS is down or does not answer), then takes the
   * response over and writes events until the client leaves or the service stops.
   */
  async serve(request: FastifyRequest, reply: FastifyReply, from: FeedRequest): Promise<void> {
    const nc = this.#nats?.connection;
    const stream = this.#stream;
    if (!nc || !stream || this.#closing) throw dependencyUnavailable('NATS');
    const options: Partial<OrderedConsumerOptions> = {
      filterSubjects: subjectFilter(stream.subjectPrefix, from),
      // a consumer left behind by a process that died goes away by itself
      inactive_threshold: 60_000,
      ...(from.after === undefined
        ? { deliver_policy: DeliverPolicy.New }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from.after + 1 }),
    };
    let consumer: Consumer | undefined;
    let abandoned = false;
    const opening = (async () => {
      consumer = await nc.jetstream().consumers.get(stream.name, options);
      const opened = await consumer.consume({ max_messages: 256 });
      // opened after the client was already told 503: let it go
      if (abandoned) remove(opened, consumer);
      return opened;
    })();
    let messages: ConsumerMessages;
    try {
      messages = await withTimeout(opening, OPEN_TIMEOUT_MS);
    } catch (err) {
      abandoned = true;
      opening.catch(() => {});
      request.log.warn({ err }, 'could not open an event feed');
      throw dependencyUnavailable('NATS');
    }
    this.#open.add(messages);
    const res = reply.raw;
    reply.hijack();
    res.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    // a HEAD gets the headers alone: Node sends nothing of an answer without a body until it ends
    if (request.method === 'HEAD') {
      this.#open.delete(messages);
      remove(messages, consumer);
      res.end();
      return;
    }
    // the retry hint for EventSource, and a first byte so proxies pass the headers on now
    res.write('retry: 1000\n: connected\n\n');
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), this.#heartbeatMs);
    const onClose = () => messages.stop();
    request.raw.once('close', onClose);
    res.once('close', onClose);
    const prefixLength = stream.subjectPrefix.length + 1;
    const pace = pacer(this.#bytesPerSecond);
    const closed = once(res, 'close').catch(() => {});
    try {
      for await (const m of messages) {
        if (res.destroyed) break;
        const text = frame(m, prefixLength);
        if (!res.write(text)) {
          await Promise.race([once(res, 'drain'), once(res, 'close')]);
        }
        const waitMs = pace(Buffer.byteLength(text));
        if (waitMs > 0) await Promise.race([sleep(waitMs), closed]);
      }
    } catch (err) {
      request.log.warn({ err }, 'event feed ended on an error');
    } finally {
      clearInterval(heartbeat);
      request.raw.off('close', onClose);
      res.off('close', onClose);
      this.#open.delete(messages);
      remove(messages, consumer);
      if (!res.destroyed) res.end();
    }
  }

  /** Ends every open feed (clients reconnect with Last-Event-ID to another replica). */
  close(): void {
    this.#closing = true;
    for (const messages of this.#open) messages.stop();
  }
}

// stops delivery and deletes the server's consumer now rather than after its inactivity threshold
function remove(messages: ConsumerMessages, consumer: Consumer | undefined): void {
  messages.stop();
  consumer?.delete().catch(() => {});
}

/**
 * A token bucket over bytes: a second's worth may go at once, then bytesPerSecond; returns how
 * long to wait after sending `bytes`. A replay of the whole stream goes at that pace instead of
 * as fast as the network takes it (27 MB in 8 s per request before); live feeds stay under it.
 */
function pacer(bytesPerSecond: number): (bytes: number) => number {
  if (bytesPerSecond <= 0) return () => 0;
  let tokens = bytesPerSecond;
  let last = performance.now();
  return (bytes) => {
    const now = performance.now();
    tokens = Math.min(bytesPerSecond, tokens + ((now - last) / 1000) * bytesPerSecond) - bytes;
    last = now;
    return tokens < 0 ? (-tokens / bytesPerSecond) * 1000 : 0;
  };
}

function frame(m: JsMsg, prefixLength: number): string {
  const type = m.subject.slice(prefixLength, m.subject.indexOf('.', prefixLength));
  // event bodies are single-line JSON; a line break would end the SSE field, so each line gets its own
  const data = m.string().replaceAll('\n', '\ndata: ');
  return `id: ${m.seq}\nevent: ${type}\ndata: ${data}\n\n`;
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`NATS did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
