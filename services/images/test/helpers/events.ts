import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool } from '@berth/service-kit';
import type { FastifyBaseLogger } from 'fastify';
import { connect, type NatsConnection } from 'nats';
import { type AppConfig, buildApp } from '../../src/app.ts';
import type { EventsOptions } from '../../src/events/settings.ts';
import { deleteStream, type StreamSettings } from '../../src/events/stream.ts';
import { Store } from '../../src/storage/store.ts';
import { tempDir, testConfig } from './app.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

/** The shared local NATS; tests only create and delete their own streams on it. */
export const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** A stream name and subject prefix of one test file's own (JetStream refuses overlapping subjects). */
export function testStream(): StreamSettings {
  const tag = `${process.pid}_${randomBytes(4).toString('hex')}`;
  return {
    name: `IMAGES_TEST_${tag}`,
    subjectPrefix: `imagestest_${tag}`,
    duplicateWindowMs: 120_000,
    maxAgeMs: 3600_000,
    maxBytes: 64 * 1024 * 1024,
    replicas: 1,
  };
}

/** Events options for tests: a quick relay on the given server and stream. */
export function testEvents(stream: StreamSettings, overrides: Partial<EventsOptions> = {}): EventsOptions {
  return {
    natsUrl: NATS_URL,
    stream,
    relay: { batch: 100, pollMs: 50, publishTimeoutMs: 2000, retentionMs: 3600_000, pruneEveryMs: 3600_000 },
    heartbeatMs: 1000,
    ...overrides,
  };
}

/** The images app with events, as main.ts builds it but without listening. */
export async function eventsApp(
  databaseUrl: string,
  dir: string,
  events: EventsOptions | undefined,
  settings: Partial<AppConfig> = {},
) {
  const pool = createPool({
    connectionString: databaseUrl,
    applicationName: 'berth-images-test',
    max: 8,
    connectTimeoutMs: 1000,
    statementTimeoutMs: 5000,
  });
  const store = new Store(dir);
  const app = buildApp(testConfig(settings), { pool, store, events });
  await app.ready();
  return { app, pool, store };
}

/** The images app eventsApp builds. */
export type EventsApp = Awaited<ReturnType<typeof eventsApp>>;

/** What an events test file works on, all of its own; close() removes every part. */
export interface EventsBed {
  db: TestDatabase;
  dir: Awaited<ReturnType<typeof tempDir>>;
  nc: NatsConnection;
  ctx: EventsApp;
  close(): Promise<void>;
}

/**
 * Opens an events test file's own database, folder, NATS connection and images app (with
 * `events`, or undefined to keep events in the outbox). close() stops the app, deletes the file's
 * stream and removes the rest; what was opened before a failure is removed again at once.
 */
export async function openEventsBed(
  stream: StreamSettings,
  events: EventsOptions | undefined,
  settings: Partial<AppConfig> = {},
): Promise<EventsBed> {
  const undo: Array<() => Promise<unknown>> = [];
  const close = async () => {
    while (undo.length > 0) await (undo.pop() as () => Promise<unknown>)();
  };
  try {
    const db = await createTestDatabase();
    undo.push(() => db.drop());
    const dir = await tempDir();
    undo.push(() => dir.remove());
    const nc = await natsConnection();
    undo.push(async () => {
      await deleteStream(nc, stream.name).catch(() => {});
      await nc.drain();
    });
    const ctx = await eventsApp(db.url, dir.path, events, settings);
    undo.push(() => ctx.app.close());
    return { db, dir, nc, ctx, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A direct connection for checking what reached the stream. */
export function natsConnection(url = NATS_URL): Promise<NatsConnection> {
  return connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
}

/** One stored message as a test looks at it. */
export interface StoredEvent {
  seq: number;
  subject: string;
  msgId: string | undefined;
  body: { id: string; type: string; occurredAt: string; dataset: string; imageId: string; image: { id: string } };
}

/** Every message in the stream, in stream order. */
export async function readStream(nc: NatsConnection, name: string): Promise<StoredEvent[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(name);
  const out: StoredEvent[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(name, { seq });
    out.push({ seq: m.seq, subject: m.subject, msgId: m.header.get('Nats-Msg-Id') || undefined, body: m.json() });
  }
  return out;
}

/** Polls until `check` returns true or the time is up (then the last failure is thrown by the caller's assertion). */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
}

/** A logger that drops everything, for parts built outside an app. */
export const silentLog: FastifyBaseLogger = {
  level: 'silent',
  fatal() {},
  error() {},
  warn() {},
  info() {},
  debug() {},
  trace() {},
  silent() {},
  child: () => silentLog,
} as unknown as FastifyBaseLogger;

/** Unsent events in a test database. */
export async function backlog(db: TestDatabase): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL');
  return row?.n ?? 0;
}

export { deleteStream };
