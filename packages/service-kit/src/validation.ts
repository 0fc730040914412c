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
  app.setValidatorCompiler((route) =>
    route.httpPart === 'body'
      ? bodies(route)
      : (finiteNumbers(others(route), route.schema) as unknown as ReturnType<typeof bodies>),
  );
}

type Validate = ((data: unknown) => boolean) & { errors?: unknown[] | null };

function isInfinite(value: unknown): boolean {
  return typeof value === 'number' && !Number.isFinite(value);
}

/**
 * Ajv coerces "Infinity", "-1e309" and the like to an infinite number and lets it past the
 * schema's minimum and maximum (its coercion accepts any string equal to its own number), so
 * /jokes/Infinity reached the database as an id. A path, query or header value that came out
 * infinite is refused like any other value out of range, naming the field and quoting it.
 */
function finiteNumbers(validate: Validate, schema: unknown): Validate {
  const properties = (schema as { properties?: Record<string, { description?: string }> }).properties ?? {};
  const checked: Validate = (data) => {
    if (!validate(data)) {
      checked.errors = validate.errors;
      return false;
    }
    if (data === null || typeof data !== 'object') return true;
    for (const [name, value] of Object.entries(data)) {
      if (isInfinite(value) || (Array.isArray(value) && value.some(isInfinite))) {
        checked.errors = [
          {
            keyword: 'maximum',
            instancePath: `/${name}`,
            message: 'must be a finite number',
            params: {},
            data: String(Array.isArray(value) ? value.find(isInfinite) : value),
            parentSchema: properties[name],
          },
        ];
        return false;
      }
    }
    checked.errors = null;
    return true;
  };
  return checked;
}
