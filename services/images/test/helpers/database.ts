import { randomBytes } from 'node:crypto';
import { dropDatabase, withDatabase } from '@berth/service-kit';
import pg from 'pg';
import { prepareDatabase } from '../../src/setup.ts';

/** The shared local server; tests only ever create and drop their own databases on it. */
export const SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A database of one test file's own, migrated. */
export interface TestDatabase {
  name: string;
  url: string;
  /** Runs one statement on it (a fresh connection each time). */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  /** Removes the database, closing whatever connections are still open on it. */
  drop(): Promise<void>;
}

/** A fresh unique database name, e.g. images_test_4242_9f3a1c0d. */
export function uniqueName(prefix = 'images_test'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Runs one statement on a database through a short-lived connection. */
export async function queryOnce<R extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Creates and migrates a database for one test file. */
export async function createTestDatabase(server = SERVER_URL): Promise<TestDatabase> {
  const name = uniqueName();
  const url = withDatabase(server, name);
  await prepareDatabase(url);
  return {
    name,
    url,
    query: (text, values) => queryOnce(url, text, values),
    drop: () => dropDatabase(url),
  };
}

export { dropDatabase };
