import { randomBytes } from 'node:crypto';
import { withDatabase } from '@berth/service-kit';

/** A database URL on the given server under a name no other run shares, e.g. bench_jokes_9f3a1c2b. */
export function privateDatabaseUrl(serverUrl: string, prefix: string): string {
  return withDatabase(serverUrl, `${prefix}_${randomBytes(4).toString('hex')}`);
}

export { dropDatabase } from '@berth/service-kit';
