// A private nats-server with JetStream for fault tests: they stop and restart this one, never the
// shared instance on 4222 that other test files are using at the same time.
import { type PrivateServer, privateNats } from '../../../../scripts/lib/private-infra.ts';

/** The fault drill's private nats-server, with its client URL; close() stops it and removes its store. */
export interface PrivateNats extends PrivateServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the fault drill's private JetStream nats-server (free port, temporary store folder). */
export async function startNatsServer(): Promise<PrivateNats> {
  const server = await privateNats();
  const close = () => server.destroy();
  try {
    await server.start();
  } catch (err) {
    await close();
    throw err;
  }
  return Object.assign(server, { url: `nats://127.0.0.1:${server.port}`, close });
}
