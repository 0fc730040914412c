import { randomBytes } from 'node:crypto';
import { dropDatabase, withDatabase } from '@berth/service-kit';
import { prepareDatabase } from '../../src/setup.ts';

/** The shared local server; tests only ever create and drop their own databases on it. */
export const SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A database of one test file's own, migrated and seeded. */
export interface TestDatabase {
  name: string;
  url: string;
  /** Removes the database, closing whatever connections are still open on it. */
  drop(): Promise<void>;
}

/** A fresh unique database name, e.g. jokes_test_4242_9f3a1c. */
export function uniqueName(prefix = 'jokes_test'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Creates, migrates and (unless told not to) seeds a database for one test file. */
export async function createTestDatabase(options: { seed?: boolean } = {}): Promise<TestDatabase> {
  const name = uniqueName();
  const url = withDatabase(SERVER_URL, name);
  await prepareDatabase(url, { seed: options.seed ?? true });
  return { name, url, drop: () => dropDatabase(url) };
}

export { dropDatabase };
