export { createService, type ServiceOptions } from './app.ts';
export { ConfigError, loadConfig, loadConfigOrExit, orExit } from './config.ts';
export { databaseEnv, databaseUrl } from './database-url.ts';
export {
  dependencyUnavailable,
  describeValidation,
  errorHandler,
  HttpError,
  httpError,
  isNoSpace,
  notFoundHandler,
} from './errors.ts';
export { advisory, type CheckResult, type ReadinessCheck, registerHealth, runCheck, runChecks } from './health.ts';
export { loggerOptions, logUrl, QuietRequestLog, requestId } from './logger.ts';
export { registerMetrics } from './metrics.ts';
export {
  databaseName,
  dropDatabase,
  ensureDatabase,
  type MigrateOptions,
  type MigrateResult,
  migrateDatabase,
  redactUrl,
  retryWhileUnavailable,
  runMigrations,
  withClient,
  withDatabase,
} from './migrate.ts';
export {
  type BodyContent,
  missingSchemas,
  type OpenApiOptions,
  registeredRoutes,
  registerOpenApi,
  underPrefix,
} from './openapi.ts';
export {
  createPool,
  isPostgresUnavailable,
  type PoolOptions,
  postgresReadiness,
  sqlState,
  withPostgres,
} from './postgres.ts';
export { type BackoffOptions, backoffDelay, connectWithBackoff } from './retry.ts';
export { baseEnv, ErrorResponse, urlEnv } from './schemas.ts';
export { DRAIN_MS, serve } from './shutdown.ts';
export { strictBodyTypes } from './validation.ts';
