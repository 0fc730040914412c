import { Type } from 'typebox';

/** Environment fields every service reads: where to listen and how much to log. */
export function baseEnv(defaultPort: number) {
  return {
    PORT: Type.Integer({ minimum: 0, maximum: 65535, default: defaultPort }),
    HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
    LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  };
}

/** The error body every berth service answers with: Fastify's own shape. */
export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String(),
    error: Type.String(),
    message: Type.String(),
  },
  { $id: 'ErrorResponse', additionalProperties: true },
);

/** An environment variable holding a URL of one of the given schemes (e.g. ['redis', 'rediss']). */
export function urlEnv(schemes: string[], defaultValue?: string) {
  return Type.String({
    pattern: `^(${schemes.join('|')})://[^\\s/?#]+`,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
}
