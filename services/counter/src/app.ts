import { createService, underPrefix } from '@berth/service-kit';
import type { Redis } from 'ioredis';
import type { CounterConfig } from './config.ts';
import { counterRepository } from './repository.ts';
import { counterRoutes } from './routes/counters.ts';
import { hitsRoutes } from './routes/hits.ts';

/** What the counter is built from; tests pass their own Redis client. */
export interface CounterDeps {
  redis: Redis;
}

/** Builds the counter app; the Redis client is closed with it. */
export function buildApp(config: CounterConfig, deps: CounterDeps) {
  const { redis } = deps;
  const app = createService({
    name: 'counter',
    logLevel: config.LOG_LEVEL,
    readiness: { redis: () => redis.ping() },
    openapi: {
      title: 'berth counter',
      description: 'Named counters in Redis, and the Docker Compose sample’s hit counter at /',
      route: '/counter/openapi.json',
      include: underPrefix('/counter', '/'),
    },
  });
  const counters = counterRepository(redis);
  hitsRoutes(app, counters);
  counterRoutes(app, counters);
  app.addHook('onClose', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  return app;
}
