import { randomBytes } from 'node:crypto';
import { withDatabase } from '@berth/service-kit';
import pg from 'pg';

/** A database URL on the given server under a name no other run shares, e.g. bench_jokes_9f3a1c2b. */
export function privateDatabaseUrl(serverUrl: string, prefix: string): string {
  return withDatabase(serverUrl, `${prefix}_${randomBytes(4).toString('hex')}`);
}

/** Drops the database the URL names; FORCE ends sessions a crashed service may have left open. */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const client = new pg.Client({
    connectionString: withDatabase(databaseUrl, 'postgres'),
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end().catch(() => {});
  }
}
