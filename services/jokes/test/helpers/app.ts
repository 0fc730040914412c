import { createPool } from '@berth/service-kit';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.ts';

/** The jokes app on the given database, as main.ts builds it but without listening. */
export function testApp(url: string, options: { connectTimeoutMs?: number; statementTimeoutMs?: number } = {}) {
  const pool = createPool({
    connectionString: url,
    applicationName: 'berth-jokes-test',
    max: 5,
    connectTimeoutMs: options.connectTimeoutMs ?? 1000,
    statementTimeoutMs: options.statementTimeoutMs ?? 2000,
  });
  return buildApp({ LOG_LEVEL: 'silent' }, { pool });
}

/** The parsed JSON body of an injected response. */
export function body<T = Record<string, unknown>>(response: LightMyRequestResponse): T {
  return response.json() as T;
}
