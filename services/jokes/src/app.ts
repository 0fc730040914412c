import { createService, postgresReadiness, underPrefix } from '@berth/service-kit';
import fastifyAccepts from '@fastify/accepts';
import type pg from 'pg';
import type { JokesConfig } from './config.ts';
import { frameworkErrors, strictJsonBodies } from './encoding.ts';
import { jokeRepository } from './repository.ts';
import { categoryRoutes } from './routes/categories.ts';
import { jokeWriteRoutes } from './routes/edit.ts';
import { jokeReadRoutes } from './routes/jokes.ts';
import { randomRoutes } from './routes/random.ts';
import { tuneSessions } from './session.ts';

/** What the jokes service is built from; tests pass a pool on their own database. */
export interface JokesDeps {
  pool: pg.Pool;
}

/** Builds the jokes app; the pool is closed with it. */
export function buildApp(config: Pick<JokesConfig, 'LOG_LEVEL'>, deps: JokesDeps) {
  const { pool } = deps;
  tuneSessions(pool);
  const app = createService({
    name: 'jokes',
    logLevel: config.LOG_LEVEL,
    // not ready until the migrate step has created the table
    readiness: { postgres: postgresReadiness(pool, 'SELECT 1 FROM jokes LIMIT 0') },
    fastify: { frameworkErrors },
    openapi: {
      title: 'berth jokes',
      description: 'JokesDB: jokes in PostgreSQL with search, random picks, categories and flags',
      route: '/jokes/openapi.json',
      include: underPrefix('/jokes'),
    },
  });
  app.register(fastifyAccepts);
  strictJsonBodies(app);
  const jokes = jokeRepository(pool);
  jokeReadRoutes(app, jokes);
  randomRoutes(app, jokes);
  categoryRoutes(app, jokes);
  jokeWriteRoutes(app, jokes);
  app.addHook('onClose', async () => {
    await pool.end();
  });
  return app;
}
