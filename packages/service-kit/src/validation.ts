import AjvCompiler from '@fastify/ajv-compiler';
import type { FastifyInstance } from 'fastify';

/**
 * JSON bodies are validated without type coercion: Fastify's default would take "2", true or [2]
 * as the number 2 and 42 as the string "42", where the client sent the wrong type and should hear
 * so. Query strings, path parameters and headers are text by nature and keep being coerced.
 * Unknown fields are refused rather than dropped; errors are verbose so the handler can quote the
 * offending value and the schema's description.
 */
export function strictBodyTypes(app: FastifyInstance): void {
  const build = AjvCompiler();
  const common = { removeAdditional: false, verbose: true } as const;
  const bodies = build({}, { customOptions: { ...common, coerceTypes: false } });
  const others = build({}, { customOptions: { ...common, coerceTypes: 'array' } });
  app.setValidatorCompiler((route) => (route.httpPart === 'body' ? bodies(route) : others(route)));
}
