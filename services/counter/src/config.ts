import { baseEnv, urlEnv } from '@berth/service-kit';
import { type Static, Type } from 'typebox';

/** The counter's environment. REDIS_KEY_PREFIX lets several deployments (or test runs) share one Redis. */
export const CounterEnv = Type.Object({
  ...baseEnv(3001),
  REDIS_URL: urlEnv(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  REDIS_KEY_PREFIX: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9:._-]*$', default: '' }),
  // capped so a hung Redis still gets its 503 out inside the 2 s the API promises
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 1500, default: 1000 }),
});

/** Validated counter configuration. */
export type CounterConfig = Static<typeof CounterEnv>;
