import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { allowedFlags } from '../flags.ts';
import { JokeOrText, plainText, wantsText } from '../negotiate.ts';
import type { JokeRepository } from '../repository.ts';
import { Errors, Joke, JokeList, type RandomInput, RandomQuery } from '../schemas.ts';

// A string body with a JSON type is sent as it is
function json(reply: FastifyReply, body: string) {
  return reply.type('application/json; charset=utf-8').send(body);
}

// Fastify types a schema as a plain record, which TypeBox's interfaces are not
const ONE = Joke as unknown as Record<string, unknown>;
const SEVERAL = JokeList as unknown as Record<string, unknown>;

/** GET /jokes/random: one joke, or with count up to 10 different ones, picked on an index. */
export function randomRoutes(app: FastifyInstance, jokes: JokeRepository) {
  app.get<{ Querystring: RandomInput }>(
    '/jokes/random',
    {
      schema: {
        summary: 'A random joke (safe unless asked otherwise); count=n gives { items } with up to 10',
        querystring: RandomQuery,
        response: {
          200: {
            content: {
              'application/json': { schema: { anyOf: [JokeOrText.content['application/json'].schema, JokeList] } },
              'text/plain': JokeOrText.content['text/plain'],
            },
          },
          404: ErrorResponse,
          ...Errors,
        },
      },
    },
    async (request, reply) => {
      const { category, lang, count } = request.query;
      const picked = await jokes.random({ category, lang, allowed: allowedFlags(request.query) }, count ?? 1);
      // serialized for the one shape it is, rather than by the anyOf of the response schema,
      // which validates the answer against each branch to pick one
      if (count !== undefined) return json(reply, reply.serializeInput({ items: picked }, SEVERAL));
      const joke = picked[0];
      if (!joke) throw httpError(404, 'NO_JOKES', 'No joke matches these filters; loosen category, lang or the flags');
      if (!wantsText(request)) return json(reply, reply.serializeInput(joke, ONE));
      return reply.type('text/plain; charset=utf-8').send(plainText(joke.joke));
    },
  );
}
