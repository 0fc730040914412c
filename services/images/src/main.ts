import './threadpool.ts';
import { createPool, databaseUrl, loadConfigOrExit, orExit, serve } from '@berth/service-kit';
import { buildApp } from './app.ts';
import { ImagesEnv } from './config.ts';
import { eventsOptions } from './events/settings.ts';
import { Store } from './storage/store.ts';

const config = loadConfigOrExit(ImagesEnv);
const pool = createPool({
  connectionString: orExit(() => databaseUrl(config)),
  applicationName: 'berth-images',
  max: config.DATABASE_POOL_MAX,
  connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
  statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
});
const store = new Store(config.IMAGES_DIR, { concurrency: config.IMPORT_CONCURRENCY });
// a setting only buildApp can check (an INBOX_* duration) stops the process like any other bad value
const app = orExit(() => buildApp(config, { pool, store, events: eventsOptions(config) }));
pool.on('error', (err) => app.log.warn({ err: err.message }, 'postgres connection lost; the next query reconnects'));
await serve(app, config.PORT, config.HOST);
