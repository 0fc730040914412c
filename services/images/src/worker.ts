import './threadpool.ts';
import { createPool, databaseUrl, loadConfigOrExit, orExit, serve } from '@berth/service-kit';
import { buildWorker } from './analysis/app.ts';
import { Store } from './storage/store.ts';
import { WorkerEnv } from './worker-config.ts';

// The images-worker: analyses every image the images service stores (perceptual hash, thumbnails),
// driven by the created events on JetStream; run as many replicas as the load needs
const config = loadConfigOrExit(WorkerEnv);
const pool = createPool({
  connectionString: orExit(() => databaseUrl(config)),
  applicationName: 'berth-images-worker',
  max: config.DATABASE_POOL_MAX,
  connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
  statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
});
const app = buildWorker(config, { pool, store: new Store(config.IMAGES_DIR) });
pool.on('error', (err) => app.log.warn({ err: err.message }, 'postgres connection lost; the next query reconnects'));
await serve(app, config.PORT, config.HOST);
