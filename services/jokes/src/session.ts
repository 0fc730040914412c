import type pg from 'pg';

// Every statement is prepared and written for a generic plan (the safe-visibility literal, the
// materialized tsquery). Left on auto, PostgreSQL re-plans statements whose custom plans look
// cheaper than the generic one, such as a search with LIMIT $n, on every execution; planning a
// search costs more than a third of running it. JIT compiles for milliseconds when an estimate
// passes jit_above_cost, which no statement here is long enough to win back.
const SETTINGS = '-c plan_cache_mode=force_generic_plan -c jit=off';

/**
 * Sets the service's session settings on every connection the pool opens from now on. They travel
 * in the startup message, so they cost no round trip and are in force before the first query. An
 * `options` parameter in DATABASE_URL takes the place of these.
 */
export function tuneSessions(pool: pg.Pool): void {
  const given = pool.options.options;
  pool.options.options = given ? `${given} ${SETTINGS}` : SETTINGS;
}
