import type pg from 'pg';

// Every statement is prepared and written for a generic plan (the safe-visibility literal, the
// materialized tsquery). Left on auto, PostgreSQL re-plans statements whose custom plans look
// cheaper than the generic one, such as a search with LIMIT $n, on every execution; planning a
// search costs more than a third of running it. JIT compiles for milliseconds when an estimate
// passes jit_above_cost, which no statement here is long enough to win back.
const SETTINGS = 'SET plan_cache_mode = force_generic_plan; SET jit = off';

/** Applies the service's session settings on every new connection, before its first query. */
export function tuneSessions(pool: pg.Pool): void {
  pool.on('connect', (client) => {
    // queued ahead of the query the connection was opened for; a failure shows on that query too
    client.query(SETTINGS).catch(() => {});
  });
}
