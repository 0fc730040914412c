import type pg from 'pg';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EventFeed } from './feed.ts';
import type { NatsClient } from './nats.ts';
import type { PassResult } from './relay.ts';

const BACKLOG = `SELECT count(*)::int8 AS backlog,
  coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age
  FROM outbox WHERE sent_at IS NULL`;

/**
 * The events metrics on the app's registry: outbox backlog and the age of its oldest event (read
 * from the database at each scrape, one query shared by both), events published, NATS connection
 * and open feeds. Returns what the relay reports each pass to.
 */
export function registerEventMetrics(
  registry: Registry,
  pool: pg.Pool,
  nats: NatsClient | undefined,
  feed: EventFeed,
): (result: PassResult) => void {
  let pending: Promise<{ backlog: number; age: number } | undefined> | undefined;
  // both gauges are collected in the same scrape: one query answers both
  const stats = () => {
    pending ??= pool
      .query<{ backlog: string; age: number }>(BACKLOG)
      .then(
        ({ rows }) => ({ backlog: Number(rows[0]?.backlog ?? 0), age: rows[0]?.age ?? 0 }),
        () => undefined,
      )
      .finally(() => setTimeout(() => (pending = undefined), 100).unref());
    return pending;
  };
  new Gauge({
    name: 'outbox_backlog',
    help: 'Image events written but not yet acknowledged by JetStream',
    registers: [registry],
    async collect() {
      const s = await stats();
      if (s) this.set(s.backlog);
    },
  });
  new Gauge({
    name: 'outbox_oldest_unsent_age_seconds',
    help: 'Age of the oldest image event not yet acknowledged by JetStream (0 when none waits)',
    registers: [registry],
    async collect() {
      const s = await stats();
      if (s) this.set(s.age);
    },
  });
  new Gauge({
    name: 'nats_connected',
    help: '1 while the images service is connected to NATS',
    registers: [registry],
    collect() {
      this.set(nats?.connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'events_feed_clients',
    help: 'Open GET /images/events feeds',
    registers: [registry],
    collect() {
      this.set(feed.clients);
    },
  });
  const published = new Counter({
    name: 'events_published_total',
    help: 'Image events published to JetStream and acknowledged (duplicates included)',
    registers: [registry],
  });
  const duplicates = new Counter({
    name: 'events_duplicates_total',
    help: 'Published image events JetStream dropped as already stored (a republish after a crash)',
    registers: [registry],
  });
  const failed = new Counter({
    name: 'events_publish_failures_total',
    help: 'Image event publishes that got no PubAck; they are retried',
    registers: [registry],
  });
  return (result) => {
    published.inc(result.published);
    duplicates.inc(result.duplicates);
    failed.inc(result.failed);
  };
}
