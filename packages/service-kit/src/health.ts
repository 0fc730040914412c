import type { FastifyInstance } from 'fastify';

/** A readiness probe: resolves when the dependency answers, rejects (or times out) when it does not. */
export type ReadinessCheck = (() => Promise<unknown>) & { advisory?: true };

/**
 * A check that is reported but does not make the service not-ready: for a dependency the service
 * keeps working without (its work waits), so taking the replica out of rotation would only hurt.
 * While it is down /readyz answers 200 with status "degraded".
 */
export function advisory(check: () => Promise<unknown>): ReadinessCheck {
  return Object.assign(() => check(), { advisory: true as const });
}

/** What /readyz reports for one dependency. */
export interface CheckResult {
  status: 'up' | 'down';
  latencyMs: number;
  error?: string;
}

/** Runs one check with a deadline so a hung dependency cannot hang the probe. */
export async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([check(), deadline]);
    return { status: 'up', latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    return { status: 'down', latencyMs: Math.round(performance.now() - started), error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check in parallel; ready only when all but advisory ones are up. */
export async function runChecks(checks: Record<string, ReadinessCheck>, timeoutMs: number) {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((name) => runCheck(checks[name] as ReadinessCheck, timeoutMs)));
  const byName: Record<string, CheckResult> = {};
  names.forEach((name, i) => {
    byName[name] = results[i] as CheckResult;
  });
  const failing = names.filter((name) => byName[name]?.status === 'down');
  const down = failing.filter((name) => !checks[name]?.advisory);
  const degraded = failing.filter((name) => checks[name]?.advisory);
  return { ready: down.length === 0, down, degraded, checks: byName };
}

const CheckSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['up', 'down'] },
    latencyMs: { type: 'integer' },
    error: { type: 'string' },
  },
  required: ['status', 'latencyMs'],
};

/** Registers GET /healthz (no I/O) and GET /readyz (every check, 503 naming the ones down; advisory ones only degrade). */
export function registerHealth(app: FastifyInstance, checks: Record<string, ReadinessCheck>, timeoutMs = 1000) {
  app.get(
    '/healthz',
    {
      schema: {
        response: { 200: { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] } },
      },
    },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: CheckSchema } },
          },
          503: {
            type: 'object',
            properties: {
              statusCode: { type: 'integer' },
              code: { type: 'string' },
              error: { type: 'string' },
              message: { type: 'string' },
              checks: { type: 'object', additionalProperties: CheckSchema },
            },
          },
        },
      },
    },
    async (_request, reply) => {
      const result = await runChecks(checks, timeoutMs);
      if (result.ready) return { status: result.degraded.length ? 'degraded' : 'ready', checks: result.checks };
      return reply.code(503).send({
        statusCode: 503,
        code: 'NOT_READY',
        error: 'Service Unavailable',
        message: `Not ready: ${result.down.join(', ')} ${result.down.length === 1 ? 'is' : 'are'} down`,
        checks: result.checks,
      });
    },
  );
}
