import { privatePostgres, type PrivateServer as Server } from '../../../../scripts/lib/private-infra.ts';

/** A PostgreSQL server of one test file's own, which it may stop and start without disturbing anyone. */
export interface PrivateServer extends Server {
  url(database: string): string;
}

/** The fault drill's private PostgreSQL (initdb and pg_ctl in a temp folder on a free port), started. */
export async function privateServer(): Promise<PrivateServer> {
  const server = await privatePostgres();
  await server.start();
  return Object.assign(server, {
    url: (database: string) => `postgres://postgres@127.0.0.1:${server.port}/${database}`,
  });
}
