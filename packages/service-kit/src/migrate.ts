import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { isPostgresUnavailable, sqlState } from './postgres.ts';
import { backoffDelay } from './retry.ts';

/** Where a service's migrations live and how patient the migrate step is with a database still starting. */
export interface MigrateOptions {
  databaseUrl: string;
  /** Folder of versioned SQL files: `0001_name.sql`, with `-- Up Migration` / `-- Down Migration` sections. */
  dir: string;
  migrationsTable?: string;
  /** How long to keep retrying while PostgreSQL cannot be reached (it may still be starting). */
  waitMs?: number;
  log?: (message: string) => void;
}

/** What a migrate run did. */
export interface MigrateResult {
  createdDatabase: boolean;
  applied: string[];
}

const CONNECT_TIMEOUT_MS = 2000;

/** The database a PostgreSQL URL points at. */
export function databaseName(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  if (!name) throw new Error(`Database URL "${redactUrl(databaseUrl)}" names no database`);
  return name;
}

/** The URL with its password masked, for messages and logs. */
export function redactUrl(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '<unparseable URL>';
  }
}

/** The same server and credentials, pointed at another database (e.g. the `postgres` maintenance one). */
export function withDatabase(databaseUrl: string, name: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/** Runs `run` on one connection of its own, closed after whatever happens. */
export async function withClient<T>(connectionString: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  // a connection lost while idle must not crash the process; the pending query fails instead
  client.on('error', () => {});
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Retries while PostgreSQL is unreachable, up to waitMs; other errors (bad password, bad SQL) fail at once. */
export async function retryWhileUnavailable<T>(
  run: () => Promise<T>,
  waitMs: number,
  log: (message: string) => void = () => {},
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const delay = backoffDelay(attempt, 200, 2000);
      if (!isPostgresUnavailable(err) || sqlState(err) === '3D000' || Date.now() + delay > deadline) throw err;
      log(`PostgreSQL is not reachable yet (${(err as Error).message}); retrying in ${delay} ms`);
      await sleep(delay);
    }
  }
}

/** Drops the database the URL names, if it exists; FORCE ends sessions still connected to it. */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const name = databaseName(databaseUrl);
  await withClient(withDatabase(databaseUrl, 'postgres'), async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  });
}

/**
 * Creates the database when it is missing. Safe when several processes race: the loser's
 * "already exists" is taken as success. Returns true when this call created it.
 */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const name = databaseName(databaseUrl);
  try {
    await withClient(databaseUrl, async () => {});
    return false;
  } catch (err) {
    if (sqlState(err) !== '3D000') throw err;
  }
  return withClient(withDatabase(databaseUrl, 'postgres'), async (client) => {
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
      return true;
    } catch (err) {
      // 42P04 duplicate_database; 23505 when two CREATE DATABASE commands collide in pg_database
      if (sqlState(err) === '42P04' || sqlState(err) === '23505') return false;
      throw err;
    }
  });
}

/**
 * Applies the pending SQL migrations in order, in one transaction, with node-pg-migrate. Its
 * advisory lock is taken in wait mode, so replicas starting together queue up and the later ones
 * find nothing left to do instead of failing.
 */
export async function runMigrations(options: MigrateOptions): Promise<string[]> {
  const log = options.log ?? (() => {});
  // loaded here so services that only import the pool helpers do not pay for the migration runner
  const { runner } = await import('node-pg-migrate');
  return withClient(options.databaseUrl, async (client) => {
    const applied = await runner({
      dbClient: client,
      dir: options.dir,
      migrationsTable: options.migrationsTable ?? 'schema_migrations',
      direction: 'up',
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      logger: { info: log, warn: log, error: log },
    });
    return applied.map((migration) => migration.name);
  });
}

/** The whole migrate step: wait for PostgreSQL, create the database if needed, apply migrations. */
export async function migrateDatabase(options: MigrateOptions): Promise<MigrateResult> {
  const waitMs = options.waitMs ?? 30_000;
  const createdDatabase = await retryWhileUnavailable(() => ensureDatabase(options.databaseUrl), waitMs, options.log);
  const applied = await retryWhileUnavailable(() => runMigrations(options), waitMs, options.log);
  return { createdDatabase, applied };
}
