import { databaseUrl, loadConfigOrExit, orExit, redactUrl } from '@berth/service-kit';
import { MigrateEnv } from './config.ts';
import { prepareDatabase } from './setup.ts';

// The one-shot migrate command compose runs before the service: exit 0 when the database is ready
const config = loadConfigOrExit(MigrateEnv);
const url = orExit(() => databaseUrl(config));
const quiet = config.LOG_LEVEL === 'silent' || config.LOG_LEVEL === 'fatal' || config.LOG_LEVEL === 'error';
const log = (message: string) => {
  if (!quiet) process.stdout.write(`images migrate: ${message}\n`);
};

try {
  log(`preparing ${redactUrl(config.DATABASE_URL)}`);
  const result = await prepareDatabase(url, { waitMs: config.MIGRATE_WAIT_MS, log });
  if (result.createdDatabase) log('created the database');
  log(result.applied.length ? `applied ${result.applied.join(', ')}` : 'schema is up to date');
} catch (err) {
  process.stderr.write(`images migrate: failed: ${(err as Error).message}\n`);
  process.exit(1);
}
