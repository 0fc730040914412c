import AjvCompiler from '@fastify/ajv-compiler';
import type { FastifyInstance } from 'fastify';

/**
 * JSON bodies are validated without type coercion, so a PATCH with "label": 42 is refused rather
 * than stored as the label "42". Query strings and path parameters are text by nature and keep
 * being coerced (limit=50, size=128).
 */
export function strictBodyTypes(app: FastifyInstance): void {
  const build = AjvCompiler();
  const common = { removeAdditional: false, verbose: true } as const;
  const bodies = build({}, { customOptions: { ...common, coerceTypes: false } });
  const others = build({}, { customOptions: { ...common, coerceTypes: 'array' } });
  app.setValidatorCompiler((route) => (route.httpPart === 'body' ? bodies(route) : others(route)));
}
