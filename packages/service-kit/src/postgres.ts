import pg from 'pg';
import { dependencyUnavailable } from './errors.ts';
import type { ReadinessCheck } from './health.ts';

/** How a service's PostgreSQL pool behaves; every limit is bounded so no request can hang on the database. */
export interface PoolOptions {
  connectionString: string;
  /** Shown in pg_stat_activity, so an operator can tell the services apart. */
  applicationName: string;
  max?: number;
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
}

/**
 * A pg Pool with bounded waits: connecting (or waiting for a free connection) gives up after
 * connectTimeoutMs, the server cancels statements after statementTimeoutMs, and the client stops
 * waiting a little later still in case the server went silent. Broken connections are dropped and
 * replaced on the next query, so the pool recovers by itself when PostgreSQL returns. An error on
 * an idle connection (the server restarted) would crash the process without a listener, so the
 * pool always has one; services add their own to log it.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const statementTimeoutMs = options.statementTimeoutMs ?? 2000;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    application_name: options.applicationName,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 1000,
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeoutMs,
    lock_timeout: statementTimeoutMs,
    idle_in_transaction_session_timeout: 10_000,
    query_timeout: statementTimeoutMs + 1000,
    keepAlive: true,
  });
  // idle connections that die are reported on the pool; a checked-out one has no listener of the
  // pool's while it sits between queries (a relay holding it across a publish), and an 'error' event
  // without a listener ends the process. The next query on it fails, and the caller drops it.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/**
 * A readiness check for /readyz: one round trip through the pool. A service can pass a query that
 * also proves its schema is in place (e.g. `SELECT 1 FROM jokes LIMIT 0`), so it stays not-ready
 * until the migrate step has run.
 */
export function postgresReadiness(pool: pg.Pool, sql = 'SELECT 1'): ReadinessCheck {
  return () => pool.query(sql);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

// SQLSTATEs that say the server, not the request, is the problem
const SERVER_STATES = new Set([
  '57P01', // admin_shutdown: the server is stopping
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or in recovery
  '53300', // too_many_connections
  '57014', // query_canceled: statement_timeout fired
  '55P03', // lock_not_available: lock_timeout fired
  '3D000', // invalid_catalog_name: the database is not there (yet)
]);

// node-postgres reports its own timeouts and lost connections with these messages and no code
const CLIENT_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error',
  'Connection terminated due to connection timeout',
];

/** True when an error means PostgreSQL cannot be reached or did not answer in time (rather than a bad query). */
export function isPostgresUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || SERVER_STATES.has(code) || code.startsWith('08')) return true;
  }
  if (CLIENT_MESSAGES.some((message) => err.message.startsWith(message))) return true;
  // AggregateError from connecting to several addresses (e.g. ::1 and 127.0.0.1) that all refused
  if (err instanceof AggregateError) return err.errors.some(isPostgresUnavailable);
  return false;
}

/** Runs a database call; an outage becomes a 503 naming PostgreSQL (cause kept for the log), anything else is rethrown. */
export async function withPostgres<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isPostgresUnavailable(err)) throw Object.assign(dependencyUnavailable('PostgreSQL'), { cause: err });
    throw err;
  }
}

/** The SQLSTATE of a PostgreSQL error (e.g. '23505' for a unique violation), or undefined. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
