import { fileURLToPath } from 'node:url';
import { type MigrateResult, migrateDatabase } from '@berth/service-kit';

/** The service's versioned SQL migrations. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

/**
 * The migrate step: creates the database if it is missing and applies pending migrations under
 * node-pg-migrate's lock. Safe to run on every start and from several replicas at once.
 */
export function prepareDatabase(
  databaseUrl: string,
  options: { waitMs?: number; log?: (message: string) => void } = {},
): Promise<MigrateResult> {
  return migrateDatabase({ databaseUrl, dir: MIGRATIONS_DIR, waitMs: options.waitMs, log: options.log });
}
