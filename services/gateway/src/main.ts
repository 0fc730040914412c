import { loadConfigOrExit, orExit, serve } from '@berth/service-kit';
import { buildApp } from './app.ts';
import { GatewayEnv } from './config.ts';
import { createRedis } from './redis.ts';
import { resolveTokens } from './tokens.ts';

const config = loadConfigOrExit(GatewayEnv);
const tokens = config.AUTH_ENABLED ? orExit(() => resolveTokens(config)) : undefined;
const redis = config.RATE_LIMIT_ENABLED ? createRedis(config) : undefined;
const app = orExit(() => buildApp(config, { tokens: tokens?.tokens, redis }));

if (!tokens) {
  app.log.warn('AUTH_ENABLED is false: anyone who reaches the gateway can write');
} else if (tokens.from === 'generated') {
  // native runs without a token: one for this run, shown once so the person who started it can write
  app.log.warn(
    `API_TOKENS is not set, so writes through this gateway take this token until it stops: ${tokens.tokens[0]} ` +
      '(send "Authorization: Bearer <token>"; set API_TOKENS in .env to keep one)',
  );
} else {
  app.log.info({ tokens: tokens.tokens.length, from: tokens.from }, 'writes need an API token');
}
if (!config.RATE_LIMIT_ENABLED) app.log.warn('RATE_LIMIT_ENABLED is false: clients are not rate-limited');

await serve(app, config.PORT, config.HOST);
