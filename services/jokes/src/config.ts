import { baseEnv, databaseEnv } from '@berth/service-kit';
import { type Static, Type } from 'typebox';

/** Where the JokesDB lives; the default is the local server with trust auth. */
export const DatabaseEnv = databaseEnv('ms3_jokes');

/** The jokes service's environment. The pool limits keep every request bounded when PostgreSQL is slow or gone. */
export const JokesEnv = Type.Object({
  ...baseEnv(3002),
  ...DatabaseEnv,
  DATABASE_POOL_MAX: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 30000, default: 1000 }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60000, default: 2000 }),
});

/** Validated jokes configuration. */
export type JokesConfig = Static<typeof JokesEnv>;

/** The migrate command's environment: only the database and how long to wait for it. */
export const MigrateEnv = Type.Object({
  LOG_LEVEL: baseEnv(3002).LOG_LEVEL,
  ...DatabaseEnv,
  MIGRATE_WAIT_MS: Type.Integer({ minimum: 0, maximum: 600000, default: 60000 }),
});

/** Validated migrate configuration. */
export type MigrateConfig = Static<typeof MigrateEnv>;
