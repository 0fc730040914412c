import { advisory, type ReadinessCheck } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { eventRoutes } from '../routes/events.ts';
import { EventFeed } from './feed.ts';
import { registerEventMetrics } from './metrics.ts';
import { NatsClient } from './nats.ts';
import { OutboxRelay } from './relay.ts';
import type { EventsOptions } from './settings.ts';

/** The events parts of a running images app. */
export interface Events {
  /** Absent when the app was built without events options: rows then wait in the outbox. */
  nats?: NatsClient;
  relay?: OutboxRelay;
  feed: EventFeed;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** NATS, the outbox relay and the live feed, for tests and shutdown. */
    events: Events;
  }
}

/**
 * The /readyz entry for NATS: reported, but advisory. The API keeps taking changes while NATS is
 * down (their events wait in the outbox), so NATS alone never takes a replica out of rotation.
 */
export function natsReadiness(events: () => Events | undefined): ReadinessCheck {
  return advisory(async () => {
    if (!events()?.nats?.connected) throw new Error('not connected; events wait in the outbox');
    const problem = events()?.relay?.problem;
    if (problem) throw new Error(problem);
  });
}

/**
 * Adds events to the app: the NATS connection (started in the background at onReady, never
 * blocking the start), the outbox relay, GET /images/events, the events metrics, and their
 * shutdown (feeds ended and the relay stopped before the pool closes, then NATS drained).
 */
export function registerEvents(app: FastifyInstance, pool: pg.Pool, options: EventsOptions | undefined): Events {
  const log = app.log.child({ task: 'events' });
  const nats = options && new NatsClient({ url: options.natsUrl, name: 'berth-images' }, log);
  const feed = new EventFeed(nats, options?.stream, options?.heartbeatMs ?? 15_000, options?.feedBytesPerSecond ?? 0);
  const onPublished = registerEventMetrics(app.metrics, pool, nats, feed);
  const relay =
    options && nats && options.relayEnabled !== false
      ? new OutboxRelay({
          pool,
          nats,
          stream: options.stream,
          settings: options.relay,
          log,
          hooks: options.hooks,
          onPublished,
        })
      : undefined;
  const events: Events = { nats, relay, feed };
  app.decorate('events', events);
  app.register(async (scope) => eventRoutes(scope, feed));
  app.addHook('onReady', async () => {
    nats?.start();
    relay?.start();
  });
  app.addHook('preClose', async () => {
    feed.close();
    await relay?.close();
  });
  app.addHook('onClose', async () => {
    await nats?.close();
  });
  return events;
}
