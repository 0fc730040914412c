import { createPool, databaseUrl, loadConfigOrExit, orExit, serve } from '@berth/service-kit';
import { buildApp } from './app.ts';
import { JokesEnv } from './config.ts';

const config = loadConfigOrExit(JokesEnv);
const pool = createPool({
  connectionString: orExit(() => databaseUrl(config)),
  applicationName: 'berth-jokes',
  max: config.DATABASE_POOL_MAX,
  connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
  statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
});
const app = buildApp(config, { pool });
pool.on('error', (err) => app.log.warn({ err: err.message }, 'postgres connection lost; the next query reconnects'));
await serve(app, config.PORT, config.HOST);
