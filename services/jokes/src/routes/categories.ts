import type { FastifyInstance } from 'fastify';
import { allowedFlags } from '../flags.ts';
import type { JokeRepository } from '../repository.ts';
import { type CategoriesInput, CategoriesQuery, CategoryList, Errors } from '../schemas.ts';

/** GET /jokes/categories: every category with how many jokes the reader can see in it. */
export function categoryRoutes(app: FastifyInstance, jokes: JokeRepository) {
  app.get<{ Querystring: CategoriesInput }>(
    '/jokes/categories',
    {
      schema: {
        summary: 'Categories with joke counts (safe jokes unless asked otherwise)',
        querystring: CategoriesQuery,
        response: { 200: CategoryList, ...Errors },
      },
    },
    async (request) => {
      const { lang } = request.query;
      return { items: await jokes.categories({ lang, allowed: allowedFlags(request.query) }) };
    },
  );
}
