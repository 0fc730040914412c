import { readFileSync } from 'node:fs';
import { Type } from 'typebox';
import { ConfigError } from './config.ts';
import { urlEnv } from './schemas.ts';

/**
 * The environment of a service with a PostgreSQL database: its URL, and optionally a file holding
 * the password (a Compose or Kubernetes secret), so the password is never written in the URL.
 */
export function databaseEnv(database: string) {
  return {
    DATABASE_URL: urlEnv(['postgres', 'postgresql'], `postgres://postgres@127.0.0.1:5432/${database}`),
    DATABASE_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1 })),
  };
}

/** DATABASE_URL with the password from DATABASE_PASSWORD_FILE filled in, when that is set. */
export function databaseUrl(config: { DATABASE_URL: string; DATABASE_PASSWORD_FILE?: string }): string {
  const file = config.DATABASE_PASSWORD_FILE;
  if (!file) return config.DATABASE_URL;
  let password: string;
  try {
    password = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`DATABASE_PASSWORD_FILE "${file}" cannot be read: ${(err as Error).message}`);
  }
  if (!password) throw new ConfigError(`DATABASE_PASSWORD_FILE "${file}" is empty`);
  const url = new URL(config.DATABASE_URL);
  url.password = encodeURIComponent(password);
  return url.toString();
}
