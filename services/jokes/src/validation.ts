import AjvCompiler from '@fastify/ajv-compiler';
import type { FastifyInstance } from 'fastify';

/**
 * JSON bodies are validated without type coercion: Fastify's default would store the number 42
 * as the joke "42" and turn "nsfw" into ["nsfw"], where a client sent the wrong type and should
 * hear so. Query strings and path parameters are text by nature and keep being coerced.
 */
export function strictBodyTypes(app: FastifyInstance): void {
  const build = AjvCompiler();
  const common = { removeAdditional: false, verbose: true } as const;
  const bodies = build({}, { customOptions: { ...common, coerceTypes: false } });
  const others = build({}, { customOptions: { ...common, coerceTypes: 'array' } });
  app.setValidatorCompiler((route) => (route.httpPart === 'body' ? bodies(route) : others(route)));
}
