import { fileURLToPath } from 'node:url';
import { migrateDatabase, retryWhileUnavailable } from '@berth/service-kit';
import pg from 'pg';
import { seed } from './seed.ts';

/** The service's versioned SQL migrations. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

/** What preparing the database did. */
export interface SetupResult {
  createdDatabase: boolean;
  applied: string[];
  seeded: number;
}

/**
 * The migrate step: creates the database if it is missing, applies pending migrations under
 * node-pg-migrate's lock and loads the starter jokes once. Safe to run on every start and from
 * several replicas at once.
 */
export async function prepareDatabase(
  databaseUrl: string,
  options: { waitMs?: number; log?: (message: string) => void; seed?: boolean } = {},
): Promise<SetupResult> {
  const { createdDatabase, applied } = await migrateDatabase({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    waitMs: options.waitMs,
    log: options.log,
  });
  let seeded = 0;
  if (options.seed !== false) {
    seeded = await retryWhileUnavailable(
      async () => {
        const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 2000 });
        client.on('error', () => {});
        await client.connect();
        try {
          return await seed(client, 'starter-jokes');
        } finally {
          await client.end().catch(() => {});
        }
      },
      options.waitMs ?? 30_000,
      options.log,
    );
  }
  return { createdDatabase, applied, seeded };
}
