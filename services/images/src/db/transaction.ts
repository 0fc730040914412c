import { createHash } from 'node:crypto';
import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';

/** A connection inside an open transaction; every write function takes one. */
export type Tx = pg.ClientBase;

const commitHooks = new WeakMap<Tx, Array<() => void>>();

/**
 * Runs `hook` once the transaction `tx` belongs to has committed (not at all when it rolls back);
 * e.g. waking the outbox relay only when there is something it can see.
 */
export function afterCommit(tx: Tx, hook: () => void): void {
  const hooks = commitHooks.get(tx);
  if (hooks) hooks.push(hook);
  else commitHooks.set(tx, [hook]);
}

/**
 * Runs `work` in one transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when
 * it throws. A connection whose ROLLBACK fails (the server went away) is dropped from the pool
 * rather than handed to the next caller. Outages surface as the shared 503.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (tx: Tx) => Promise<T>,
  /** Statements to run right after BEGIN in the same round trip (fixed SQL, no parameters). */
  first?: string,
): Promise<T> {
  return withPostgres(async () => {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query(first ? `BEGIN; ${first}` : 'BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      const hooks = commitHooks.get(client);
      commitHooks.delete(client);
      if (hooks) runHooks(hooks);
      return result;
    } catch (err) {
      commitHooks.delete(client);
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  });
}

// the transaction has committed: a failing hook must not turn that into an error for the caller
function runHooks(hooks: Array<() => void>): void {
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      // nothing to undo
    }
  }
}

const names = new Map<string, string>();

/** A stable statement name per SQL text, so each connection parses and plans it once. */
export function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    name = `images_${createHash('sha256').update(text).digest('base64url').slice(0, 22)}`;
    names.set(text, name);
  }
  return name;
}

/** A prepared query config for node-postgres. */
export function prepared(text: string, values: unknown[]): pg.QueryConfig {
  return { name: statementName(text), text, values };
}
