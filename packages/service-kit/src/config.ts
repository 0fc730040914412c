import envSchema from 'env-schema';
import type { Static, TObject } from 'typebox';

/** Raised when an environment variable is missing or invalid; the message names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

interface AjvIssue {
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

function describe(issue: AjvIssue, env: NodeJS.ProcessEnv): string {
  const missing = issue.params.missingProperty;
  if (typeof missing === 'string') return `${missing} is required`;
  const name = issue.instancePath.replace(/^\//, '');
  const value = env[name];
  const got = value === undefined ? '' : ` (got "${value}")`;
  return `${name} ${issue.message ?? 'is not valid'}${got}`;
}

/**
 * Reads and validates configuration from the environment against a TypeBox schema.
 * Strings are coerced to the schema's types and defaults applied; anything else throws a ConfigError
 * whose message names every offending variable.
 */
export function loadConfig<S extends TObject>(schema: S, env: NodeJS.ProcessEnv = process.env): Static<S> {
  try {
    return envSchema<Static<S>>({ schema, data: env, env: false, dotenv: false });
  } catch (err) {
    const issues = (err as { errors?: AjvIssue[] }).errors;
    if (!issues) throw err;
    const lines = issues.map((issue) => describe(issue, env));
    throw new ConfigError(`Invalid environment: ${lines.join('; ')}`);
  }
}

/** Runs a start-up step; a ConfigError is printed and ends the process with status 78 (EX_CONFIG). */
export function orExit<T>(step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(78);
  }
}

/** loadConfig for a main module: prints the problem and exits with status 78 (EX_CONFIG). */
export function loadConfigOrExit<S extends TObject>(schema: S, env: NodeJS.ProcessEnv = process.env): Static<S> {
  return orExit(() => loadConfig(schema, env));
}
