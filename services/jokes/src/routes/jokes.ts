import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { decodeCursor, encodeCursor, queryKey } from '../cursor.ts';
import { allowedFlags } from '../flags.ts';
import { JokeOrText, plainText, wantsText } from '../negotiate.ts';
import type { JokeRepository, Page } from '../repository.ts';
import {
  Errors,
  IdParams,
  JokePage,
  type ListInput,
  ListQuery,
  type VisibilityInput,
  VisibilityOnlyQuery,
} from '../schemas.ts';

// Requests that share a search share its page object (same q and filters, so the same cursor key):
// the body is built and encoded once per page, and a Buffer is sent as it is
const bodies = new WeakMap<Page, Buffer>();

// The items arrive as JSON text from the database
function pageBody(page: Page, key: string): Buffer {
  let body = bodies.get(page);
  if (!body) {
    const nextCursor = page.next ? encodeCursor(key, page.next) : null;
    body = Buffer.from(`{"items":[${page.json.join(',')}],"nextCursor":${JSON.stringify(nextCursor)}}`);
    bodies.set(page, body);
  }
  return body;
}

/** GET /jokes (list and full-text search) and GET /jokes/:id. */
export function jokeReadRoutes(app: FastifyInstance, jokes: JokeRepository) {
  app.get<{ Querystring: ListInput }>(
    '/jokes',
    {
      schema: {
        summary: 'List jokes in id order, or search them (q) best match first; keyset pages of up to 100',
        querystring: ListQuery,
        response: { 200: JokePage, ...Errors },
      },
    },
    async (request, reply) => {
      const { q, category, lang, limit, cursor } = request.query;
      const filters = { category, lang, allowed: allowedFlags(request.query) };
      const key = queryKey({ q, ...filters });
      const after = cursor === undefined ? undefined : decodeCursor(cursor, key, q !== undefined);
      const page =
        q === undefined ? await jokes.list(filters, limit, after) : await jokes.search(q, filters, limit, after);
      return reply.type('application/json; charset=utf-8').send(pageBody(page, key));
    },
  );

  app.get<{ Params: { id: number }; Querystring: VisibilityInput }>(
    '/jokes/:id',
    {
      schema: {
        summary: 'One joke; Accept: text/plain gives its text alone',
        params: IdParams,
        querystring: VisibilityOnlyQuery,
        response: { 200: JokeOrText, 403: ErrorResponse, 404: ErrorResponse, ...Errors },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const joke = await jokes.get(id);
      if (!joke) throw httpError(404, 'JOKE_NOT_FOUND', `Joke ${id} does not exist`);
      const allowed = allowedFlags(request.query);
      const hidden = joke.flags.filter((flag) => !(allowed as string[]).includes(flag));
      if (hidden.length > 0) {
        throw httpError(
          403,
          'JOKE_FLAGGED',
          `Joke ${id} is flagged "${hidden.join(', ')}"; ask with safe=false or include=${hidden.join(',')} to see it`,
        );
      }
      if (!wantsText(request)) return joke;
      return reply.type('text/plain; charset=utf-8').send(plainText(joke.joke));
    },
  );
}
