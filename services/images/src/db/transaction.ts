import { createHash } from 'node:crypto';
import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';

/** A connection inside an open transaction; every write function takes one. */
export type Tx = pg.ClientBase;

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
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  });
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
