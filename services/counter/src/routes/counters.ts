import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { CounterRepository } from '../repository.ts';

// "." and ".." are path segments that clients and proxies resolve away, so they cannot name a counter
const Params = Type.Object({
  name: Type.String({
    pattern: '^(?!\\.\\.?$)[a-z0-9._-]{1,64}$',
    description: 'must be 1 to 64 characters of a-z, 0-9, ".", "_" and "-", other than "." and ".."',
  }),
});

const BY_RULE = 'must be a whole number from 1 to 1000000';

const IncrementBody = Type.Object(
  {
    by: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: BY_RULE })),
  },
  { additionalProperties: false },
);

const Counter = Type.Object({ name: Type.String(), value: Type.Integer() });

const errors = { 400: ErrorResponse, 503: ErrorResponse };

/** Named counters under /counter/:name. */
export function counterRoutes(app: FastifyInstance, counters: CounterRepository) {
  app.get<{ Params: { name: string } }>(
    '/counter/:name',
    { schema: { summary: 'Read a counter (0 if never used)', params: Params, response: { 200: Counter, ...errors } } },
    async (request) => {
      const { name } = request.params;
      return { name, value: await counters.get(name) };
    },
  );

  app.post<{ Params: { name: string }; Body: { by?: number } | undefined }>(
    '/counter/:name/increment',
    {
      schema: {
        summary: 'Add to a counter (by 1 unless a body says { "by": n })',
        params: Params,
        body: IncrementBody,
        response: { 200: Counter, ...errors },
      },
      // the body is optional: no body means { by: 1 }
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const { name } = request.params;
      const by = request.body?.by ?? 1;
      return { name, value: await counters.increment(name, by) };
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/counter/:name',
    {
      schema: {
        summary: 'Remove a counter',
        params: Params,
        response: { 204: Type.Null(), 404: ErrorResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      if (!(await counters.remove(name))) {
        throw httpError(404, 'COUNTER_NOT_FOUND', `Counter "${name}" does not exist`);
      }
      return reply.code(204).send();
    },
  );
}
