import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { Joke } from './schemas.ts';

/** True when the client prefers the bare joke text (Accept: text/plain) to JSON; JSON otherwise. */
export function wantsText(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  // only an Accept header that names a text type can put text before JSON; most clients send none
  if (accept === undefined || !TEXT_TYPE.test(accept)) return false;
  return request.accepts().type(['application/json', 'text/plain']) === 'text/plain';
}

const TEXT_TYPE = /text\//i;

/** Response schema of a single-joke answer: the joke as JSON, or its text alone. */
export const JokeOrText = {
  content: {
    'application/json': { schema: Joke },
    'text/plain': { schema: Type.String() },
  },
};

/** The text/plain body: the joke and a final newline, so it prints cleanly in a terminal. */
export function plainText(joke: string): string {
  return joke.endsWith('\n') ? joke : `${joke}\n`;
}
