import { ErrorResponse } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type { CounterRepository } from '../repository.ts';

/** GET /: the Docker Compose sample's page, byte for byte. */
export function hitsRoutes(app: FastifyInstance, counters: CounterRepository) {
  app.get(
    '/',
    {
      schema: {
        summary: 'The Docker Compose sample: counts and reports visits',
        response: {
          200: { description: 'The page', content: { 'text/plain': { schema: { type: 'string' } } } },
          503: ErrorResponse,
        },
      },
    },
    async (_request, reply) => {
      const count = await counters.hit();
      reply.type('text/plain; charset=utf-8');
      return `Hello World! I have been seen ${count} times.\n`;
    },
  );
}
