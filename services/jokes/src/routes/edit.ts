import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { DuplicateJoke, type JokeRepository } from '../repository.ts';
import {
  CreateBody,
  type CreateInput,
  DuplicateResponse,
  Errors,
  IdParams,
  Joke,
  PatchBody,
  type PatchInput,
} from '../schemas.ts';

function conflict(reply: FastifyReply, err: DuplicateJoke) {
  return reply.code(409).send({
    statusCode: 409,
    code: 'DUPLICATE_JOKE',
    error: 'Conflict',
    message: `${err.message}; fetch /jokes/${err.existingId} instead of adding it again`,
    existingId: err.existingId,
  });
}

// leading and trailing blanks are never part of the joke; inner line breaks are kept
function tidy<T extends { joke?: string }>(input: T): T {
  return input.joke === undefined ? input : { ...input, joke: input.joke.trim() };
}

/** POST /jokes, PATCH /jokes/:id and DELETE /jokes/:id. */
export function jokeWriteRoutes(app: FastifyInstance, jokes: JokeRepository) {
  app.post<{ Body: CreateInput }>(
    '/jokes',
    {
      schema: {
        summary: 'Add a joke; the same joke again (ignoring case, spaces and punctuation) is a 409 naming it',
        body: CreateBody,
        response: { 201: Joke, 409: DuplicateResponse, ...Errors },
      },
    },
    async (request, reply) => {
      try {
        const joke = await jokes.create(tidy(request.body));
        return reply.code(201).header('location', `/jokes/${joke.id}`).send(joke);
      } catch (err) {
        if (err instanceof DuplicateJoke) return conflict(reply, err);
        throw err;
      }
    },
  );

  app.patch<{ Params: { id: number }; Body: PatchInput }>(
    '/jokes/:id',
    {
      schema: {
        summary: 'Change a joke’s text, category, language or flags',
        params: IdParams,
        body: PatchBody,
        response: { 200: Joke, 404: ErrorResponse, 409: DuplicateResponse, ...Errors },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      try {
        const joke = await jokes.update(id, tidy(request.body));
        if (!joke) throw httpError(404, 'JOKE_NOT_FOUND', `Joke ${id} does not exist`);
        return joke;
      } catch (err) {
        if (err instanceof DuplicateJoke) return conflict(reply, err);
        throw err;
      }
    },
  );

  app.delete<{ Params: { id: number } }>(
    '/jokes/:id',
    {
      schema: {
        summary: 'Remove a joke',
        params: IdParams,
        response: { 204: Type.Null(), 404: ErrorResponse, ...Errors },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!(await jokes.remove(id))) throw httpError(404, 'JOKE_NOT_FOUND', `Joke ${id} does not exist`);
      return reply.code(204).send();
    },
  );
}
