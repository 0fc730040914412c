import { connectWithBackoff } from '@berth/service-kit';
import type { FastifyBaseLogger } from 'fastify';
import { connect, Events, type NatsConnection } from 'nats';

/** How the images service reaches NATS. */
export interface NatsSettings {
  url: string;
  /** Shown in the server's connection list. */
  name: string;
  /** How long one connect attempt may take. */
  connectTimeoutMs?: number;
}

/**
 * One NATS connection that is never given up on. The first connect is retried with backoff in the
 * background, so the service starts (and serves its API) while NATS is down; once connected, the
 * client reconnects by itself forever. `connected` is what /readyz and the relay look at.
 */
export class NatsClient {
  readonly #settings: NatsSettings;
  readonly #log: FastifyBaseLogger;
  readonly #abort = new AbortController();
  readonly #listeners = new Set<() => void>();
  #nc: NatsConnection | undefined;
  #connected = false;
  #loop: Promise<void> | undefined;

  constructor(settings: NatsSettings, log: FastifyBaseLogger) {
    this.#settings = settings;
    this.#log = log;
  }

  /** Starts connecting in the background; returns at once. */
  start(): void {
    this.#loop ??= this.#run().catch((err: Error) => {
      if (!this.#abort.signal.aborted) this.#log.error({ err }, 'NATS connection loop ended');
    });
  }

  /** True while the connection is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The connection while it is up, else undefined. */
  get connection(): NatsConnection | undefined {
    return this.#connected ? this.#nc : undefined;
  }

  /** Calls `listener` on every (re)connect; returns the function that stops it. */
  onConnect(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves once connected, or rejects when the signal aborts first. */
  async ready(signal?: AbortSignal): Promise<NatsConnection> {
    for (;;) {
      const nc = this.connection;
      if (nc) return nc;
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const stop = this.onConnect(done);
        const timer = setTimeout(done, 100);
        function done() {
          clearTimeout(timer);
          stop();
          resolve();
        }
      });
    }
  }

  /** Drains the connection (pending publishes flushed, subscriptions ended) and stops reconnecting. */
  async close(): Promise<void> {
    this.#abort.abort();
    const nc = this.#nc;
    this.#connected = false;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    await this.#loop;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const nc = await connectWithBackoff(
        () =>
          connect({
            servers: this.#settings.url,
            name: this.#settings.name,
            timeout: this.#settings.connectTimeoutMs ?? 2000,
            reconnect: true,
            maxReconnectAttempts: -1,
            reconnectTimeWait: 500,
            // a server that went silent is noticed within about 15 s, a closed socket at once
            pingInterval: 5000,
            maxPingOut: 3,
            // no stack captured per request: the relay publishes thousands a second, and the stack
            // of a PubAck timeout would only point into the client
            noAsyncTraces: true,
          }),
        {
          minMs: 200,
          maxMs: 5000,
          signal,
          onRetry: (err, attempt) => {
            if (attempt === 1 || attempt % 10 === 0) {
              this.#log.warn({ err: err.message, attempt }, 'NATS is unavailable; retrying in the background');
            }
          },
        },
      ).catch((err: Error) => {
        if (signal.aborted) return undefined;
        throw err;
      });
      if (!nc) return;
      if (signal.aborted) {
        await nc.close();
        return;
      }
      this.#nc = nc;
      this.#setConnected(true);
      this.#log.info({ server: nc.getServer() }, 'connected to NATS');
      void this.#watch(nc);
      await nc.closed();
      this.#connected = false;
    }
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === Events.Disconnect) {
        this.#connected = false;
        this.#log.warn('lost the connection to NATS; reconnecting');
      } else if (status.type === Events.Reconnect) {
        this.#setConnected(true);
        this.#log.info('reconnected to NATS');
      }
    }
  }

  #setConnected(up: boolean): void {
    this.#connected = up;
    if (!up) return;
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch (err) {
        this.#log.error({ err }, 'NATS connect listener failed');
      }
    }
  }
}
