import { loadConfigOrExit, serve } from '@berth/service-kit';
import { buildApp } from './app.ts';
import { GatewayEnv } from './config.ts';

const config = loadConfigOrExit(GatewayEnv);
const app = buildApp(config);
await serve(app, config.PORT, config.HOST);
