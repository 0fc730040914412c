import { parseArgs } from 'node:util';
import { loadConfigOrExit, urlEnv } from '@berth/service-kit';
import { type Static, Type } from 'typebox';

/** The benchmark's environment; every figure has a default that matches the targets. */
export const BenchEnv = Type.Object({
  BENCH_DURATION: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'seconds per measured run' }),
  BENCH_WARMUP: Type.Integer({ minimum: 0, maximum: 600, default: 3, description: 'seconds of warm-up per target' }),
  BENCH_ROUNDS: Type.Integer({ minimum: 1, maximum: 20, default: 2, description: 'alternating rounds per pair' }),
  BENCH_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }),
  BENCH_RATE: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000, description: 'fixed-rate req/s' }),
  REDIS_URL: urlEnv(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  DATABASE_URL: urlEnv(['postgres', 'postgresql'], 'postgres://postgres@127.0.0.1:5432/postgres'),
  NATS_URL: urlEnv(['nats'], 'nats://127.0.0.1:4222'),
  BENCH_IMAGES: Type.Integer({ minimum: 100, maximum: 1_000_000, default: 60_000, description: 'images imported' }),
});

/** Validated benchmark settings plus the scenarios picked on the command line. */
export interface BenchOptions {
  seconds: number;
  warmupSeconds: number;
  rounds: number;
  connections: number;
  rate: number;
  redisUrl: string;
  /** A PostgreSQL server URL; scenarios create their private databases on it and drop them after. */
  databaseUrl: string;
  /** NATS with JetStream; the images scenario makes a stream of its own there and deletes it after. */
  natsUrl: string;
  /** How many images the images scenario imports. */
  images: number;
  /** Scenario names from --only; empty means all. */
  only: string[];
}

/** The usage text for --help. */
export function usage(scenarios: string[]): string {
  return [
    'Usage: npm run bench [-- --only <scenario>[,<scenario>...]]',
    '',
    `Scenarios: ${scenarios.join(', ')}`,
    '',
    'Environment:',
    '  BENCH_DURATION     seconds per measured run (default 10)',
    '  BENCH_WARMUP       seconds of warm-up per target (default 3)',
    '  BENCH_ROUNDS       alternating rounds, the median is reported (default 2)',
    '  BENCH_CONNECTIONS  concurrent connections (default 50)',
    '  BENCH_RATE         requests per second of the fixed-rate runs (default 1000)',
    '  REDIS_URL          Redis the counter and the baseline use (default redis://127.0.0.1:6379)',
    '  DATABASE_URL       PostgreSQL server the run creates its private databases on',
    '                     (default postgres://postgres@127.0.0.1:5432/postgres)',
    '  NATS_URL           NATS with JetStream for the images events (default nats://127.0.0.1:4222)',
    '  BENCH_IMAGES       images in the IDX import of the images scenario (default 60000)',
    '  BENCH_PYTHON       Python with flask, redis and gunicorn for the baseline (default /usr/bin/python3)',
  ].join('\n');
}

/** Reads argv and the environment; a bad value exits 78 naming the variable, --help prints usage and exits. */
export function readOptions(argv: string[], scenarios: string[]): BenchOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage(scenarios)}\n`);
    process.exit(64);
  }
  if (parsed.values.help) {
    process.stdout.write(`${usage(scenarios)}\n`);
    process.exit(0);
  }
  const only = (parsed.values.only ?? []).flatMap((value) => value.split(',')).filter(Boolean);
  const unknown = only.filter((name) => !scenarios.includes(name));
  if (unknown.length > 0) {
    process.stderr.write(`Unknown scenario "${unknown[0]}"; choose from ${scenarios.join(', ')}\n`);
    process.exit(64);
  }
  const env: Static<typeof BenchEnv> = loadConfigOrExit(BenchEnv);
  return {
    seconds: env.BENCH_DURATION,
    warmupSeconds: env.BENCH_WARMUP,
    rounds: env.BENCH_ROUNDS,
    connections: env.BENCH_CONNECTIONS,
    rate: env.BENCH_RATE,
    redisUrl: env.REDIS_URL,
    databaseUrl: env.DATABASE_URL,
    natsUrl: env.NATS_URL,
    images: env.BENCH_IMAGES,
    only,
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: { only: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: false,
  });
}
