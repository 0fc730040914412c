import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { type JetStreamClient, headers as natsHeaders, type PubAck } from 'nats';
import type pg from 'pg';
import type { NatsClient } from './nats.ts';
import { type EventType, onEventsCommitted } from './outbox.ts';
import { ensureStream, type StreamSettings, StreamSettingsError, subjectFor } from './stream.ts';

/** The longest a failing relay waits before its next pass. */
export const RELAY_MAX_BACKOFF_MS = 5000;

/**
 * How long after a first publish the relay may publish the same event again: a mark that failed
 * after the PubAck is retried on later passes, and a relay that died is replaced within a poll.
 * Three such rounds; the stream's duplicate window must cover them, or a republished event is
 * stored twice.
 */
export function retryHorizonMs(settings: { publishTimeoutMs: number; pollMs: number }): number {
  return 3 * (settings.publishTimeoutMs + RELAY_MAX_BACKOFF_MS + settings.pollMs);
}

/** How the relay paces itself. */
export interface RelaySettings {
  /** Events taken per pass: published together with their PubAcks awaited together. */
  batch: number;
  /** How often an idle relay looks for events other replicas wrote (its own commits wake it at once). */
  pollMs: number;
  /** How long a PubAck may take; below the database's idle-in-transaction limit. */
  publishTimeoutMs: number;
  /** Sent events are kept this long, then pruned. */
  retentionMs: number;
  /** How often pruning runs. */
  pruneEveryMs: number;
}

/** An event row as the relay takes it. */
export interface OutboxRow {
  seq: string;
  id: string;
  type: EventType;
  image_id: string;
  dataset: string;
  payload: string;
  created_at: Date;
  /** A later event of the same image is waiting behind this one. */
  has_next: boolean;
}

/** Points where tests stop a relay on purpose, e.g. to crash between publish and mark-sent. */
export interface RelayHooks {
  afterPublish?: (rows: OutboxRow[]) => Promise<void> | void;
}

/** What a pass did. */
export interface PassResult {
  published: number;
  duplicates: number;
  failed: number;
  /** Events held back behind ones published in this pass wait for the next pass. */
  waiting: boolean;
}

// The head of each image's queue only: an event is taken when no earlier event of the same image is
// still unsent. Rows another relay holds are skipped (SKIP LOCKED) and, being unsent, also hold back
// the later events of their images, so two relays never publish events of one image at the same time
// and an image's events reach the stream in order whatever fails in between. has_next tells the
// relay whether publishing this row frees another, so it goes again at once only when there is more.
const CLAIM = `SELECT o.seq, o.id, o.type, o.image_id, o.dataset, o.payload::text AS payload, o.created_at,
    EXISTS (SELECT 1 FROM outbox n WHERE n.image_id = o.image_id AND n.sent_at IS NULL AND n.seq > o.seq) AS has_next
  FROM outbox o
  WHERE o.sent_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.image_id = o.image_id AND p.sent_at IS NULL AND p.seq < o.seq)
  ORDER BY o.seq
  LIMIT $1
  FOR UPDATE OF o SKIP LOCKED`;

const MARK_SENT = 'UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::int8[])';

const PRUNE = `DELETE FROM outbox WHERE seq IN (
  SELECT seq FROM outbox WHERE sent_at < now() - $1 * interval '1 millisecond' ORDER BY sent_at LIMIT $2)`;

const PRUNE_CHUNK = 10_000;

/** The JSON body of an event message; the image is the stored JSON as it is. */
export function eventBody(row: OutboxRow): string {
  const head = JSON.stringify({
    id: row.id,
    type: row.type,
    occurredAt: row.created_at.toISOString(),
    dataset: row.dataset,
    imageId: row.image_id,
  });
  return `${head.slice(0, -1)},"image":${row.payload}}`;
}

/**
 * Publishes the outbox to JetStream: takes a batch of unsent events in a transaction, publishes them
 * all (PubAcks awaited together), stamps the acknowledged ones sent and commits. A relay that dies
 * before the commit leaves its events unsent; whoever publishes them again uses the same Nats-Msg-Id,
 * which JetStream drops as a duplicate within its window. While NATS is down events wait in the table.
 */
export class OutboxRelay {
  readonly #pool: pg.Pool;
  readonly #nats: NatsClient;
  readonly #stream: StreamSettings;
  readonly #settings: RelaySettings;
  readonly #log: FastifyBaseLogger;
  readonly #hooks: RelayHooks;
  readonly #onPublished: (result: PassResult) => void;
  #js: JetStreamClient | undefined;
  #streamReady = false;
  #problem: string | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  #stops: Array<() => void> = [];
  #lastPrune = 0;

  constructor(options: {
    pool: pg.Pool;
    nats: NatsClient;
    stream: StreamSettings;
    settings: RelaySettings;
    log: FastifyBaseLogger;
    hooks?: RelayHooks;
    onPublished?: (result: PassResult) => void;
  }) {
    this.#pool = options.pool;
    this.#nats = options.nats;
    this.#stream = options.stream;
    this.#settings = options.settings;
    this.#log = options.log;
    this.#hooks = options.hooks ?? {};
    this.#onPublished = options.onPublished ?? (() => {});
  }

  /** Starts the background loop. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stops.push(
      onEventsCommitted(() => this.wake()),
      this.#nats.onConnect(() => {
        // a new connection may be to a server that lost the stream
        this.#js = undefined;
        this.#streamReady = false;
        this.wake();
      }),
    );
    this.#loop = this.#run();
  }

  /** Looks for events now rather than at the next poll. */
  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  /** Stops the loop after the pass in hand; unsent events stay for the next start or another replica. */
  async close(): Promise<void> {
    this.#running = false;
    for (const stop of this.#stops) stop();
    this.#stops = [];
    this.wake();
    await this.#loop;
  }

  /** Why the stream cannot be published to as configured (file storage, replicas, window), or undefined. */
  get problem(): string | undefined {
    return this.#problem;
  }

  /** Makes sure the stream exists with the configured settings (once per connection). */
  async ensureStream(): Promise<void> {
    if (this.#streamReady) return;
    const nc = this.#nats.connection;
    if (!nc) throw new Error('NATS is not connected');
    await ensureStream(nc, this.#stream);
    this.#streamReady = true;
  }

  /**
   * One pass: publishes up to one batch and marks what was acknowledged. Throws when some
   * publishes failed (after marking the rest), so the caller backs off.
   */
  async publishBatch(): Promise<PassResult> {
    const nc = this.#nats.connection;
    if (!nc) throw new Error('NATS is not connected');
    await this.ensureStream();
    this.#js ??= nc.jetstream({ timeout: this.#settings.publishTimeoutMs });
    const js = this.#js;
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<OutboxRow>({
        name: 'outbox_claim',
        text: CLAIM,
        values: [this.#settings.batch],
      });
      if (rows.length === 0) {
        await client.query('COMMIT');
        return { published: 0, duplicates: 0, failed: 0, waiting: false };
      }
      const results = await Promise.allSettled(rows.map((row) => this.#publish(js, row)));
      await this.#hooks.afterPublish?.(rows);
      const sent: string[] = [];
      let duplicates = 0;
      let waiting = rows.length === this.#settings.batch;
      let firstError: unknown;
      results.forEach((result, i) => {
        const row = rows[i] as OutboxRow;
        if (result.status === 'fulfilled') {
          sent.push(row.seq);
          if (result.value.duplicate) duplicates++;
          if (row.has_next) waiting = true;
        } else firstError ??= result.reason;
      });
      if (sent.length > 0) await client.query({ name: 'outbox_mark_sent', text: MARK_SENT, values: [sent] });
      await client.query('COMMIT');
      const result = { published: sent.length, duplicates, failed: rows.length - sent.length, waiting };
      this.#onPublished(result);
      if (firstError) throw firstError;
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** Publishes until nothing is left that can be published now; for tests and the loop. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const { published } = await this.publishBatch();
      if (published === 0) return total;
      total += published;
    }
  }

  /** Deletes sent events older than the retention period; returns how many. */
  async prune(): Promise<number> {
    let total = 0;
    for (;;) {
      const { rowCount } = await this.#pool.query({
        name: 'outbox_prune',
        text: PRUNE,
        values: [this.#settings.retentionMs, PRUNE_CHUNK],
      });
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < PRUNE_CHUNK) return total;
    }
  }

  #publish(js: JetStreamClient, row: OutboxRow): Promise<PubAck> {
    const h = natsHeaders();
    h.set('Nats-Msg-Id', row.id);
    return js.publish(subjectFor(this.#stream.subjectPrefix, row.type, row.dataset), eventBody(row), {
      headers: h,
      timeout: this.#settings.publishTimeoutMs,
      expect: { streamName: this.#stream.name },
    });
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      this.#woken = false;
      let more = false;
      if (this.#nats.connected) {
        try {
          const result = await this.publishBatch();
          // a full batch, or events of the same images freed by this one: go again at once; events
          // committed meanwhile in this process have woken the loop already
          more = result.waiting;
          failures = 0;
          this.#problem = undefined;
        } catch (err) {
          failures++;
          if (err instanceof StreamSettingsError) {
            // loudly: acknowledgements from this stream would not mean the events are safe
            this.#problem = err.message;
            if (failures === 1 || failures % 20 === 0) this.#log.error({ failures }, err.message);
          } else if (failures === 1 || failures % 20 === 0) {
            this.#log.warn({ err, failures }, 'outbox relay could not publish; events wait in the outbox');
          }
          // a publish refused for a missing stream sets the stream up again on the next pass
          this.#streamReady = false;
          await sleep(Math.min(100 * 2 ** failures, RELAY_MAX_BACKOFF_MS));
        }
        await this.#maybePrune();
      }
      if (!more && this.#running && !this.#woken) await this.#idle();
    }
  }

  async #maybePrune(): Promise<void> {
    const now = Date.now();
    if (now - this.#lastPrune < this.#settings.pruneEveryMs) return;
    this.#lastPrune = now;
    try {
      const pruned = await this.prune();
      if (pruned > 0) this.#log.debug({ pruned }, 'pruned sent outbox events');
    } catch (err) {
      this.#log.warn({ err }, 'could not prune the outbox; trying again later');
    }
  }

  #idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.#settings.pollMs);
      const self = this;
      this.#wake = done;
      function done() {
        clearTimeout(timer);
        self.#wake = undefined;
        resolve();
      }
    });
  }
}
