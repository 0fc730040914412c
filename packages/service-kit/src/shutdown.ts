import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';

/** How long in-flight work gets to drain after SIGTERM before the process gives up. */
export const DRAIN_MS = 8000;

/**
 * Listens, then on SIGTERM/SIGINT stops accepting, lets in-flight requests finish and closes the
 * app's pools (its onClose hooks), exiting 0 well inside the 10 s a container is given.
 */
export async function serve(app: FastifyInstance, port: number, host: string): Promise<string> {
  closeWithGrace({ delay: DRAIN_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an unexpected error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
  });
  try {
    return await app.listen({ port, host });
  } catch (err) {
    app.log.fatal({ err }, 'could not listen');
    process.exit(1);
  }
}
