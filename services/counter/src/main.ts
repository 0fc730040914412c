import { loadConfigOrExit, serve } from '@berth/service-kit';
import { buildApp } from './app.ts';
import { CounterEnv } from './config.ts';
import { createRedis } from './redis.ts';

const config = loadConfigOrExit(CounterEnv);
const redis = createRedis(config);
const app = buildApp(config, { redis });
redis.on('error', (err) => app.log.warn({ err: err.message }, 'redis connection problem'));
redis.on('ready', () => app.log.info('redis connected'));
await serve(app, config.PORT, config.HOST);
