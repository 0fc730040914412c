import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { ROOT } from './services.ts';
import type { Stack } from './stack.ts';

const run = promisify(execFile);

/** How to get what the baseline needs on Debian or Ubuntu. */
export const BASELINE_INSTALL = 'apt-get install -y python3-flask python3-redis gunicorn';

/**
 * The system Python first: a pyenv or venv python3 earlier on PATH usually lacks Flask.
 * BENCH_PYTHON picks another interpreter.
 */
function candidates(): string[] {
  const chosen = process.env.BENCH_PYTHON;
  return chosen ? [chosen] : ['/usr/bin/python3', 'python3'];
}

/** The first Python that can import flask, redis and gunicorn, or null when none can. */
export async function findBaselinePython(): Promise<string | null> {
  for (const python of candidates()) {
    try {
      await run(python, ['-c', 'import flask, redis, gunicorn'], { timeout: 10_000 });
      return python;
    } catch {
      // try the next one
    }
  }
  return null;
}

/** Options for the baseline app. */
export interface BaselineOptions {
  python: string;
  redisUrl: string;
  keyPrefix: string;
  workers?: number;
}

/**
 * Starts the Docker Compose sample app (bench/baseline/app.py) the way it is deployed: gunicorn with
 * two sync workers. Answers with its base URL once GET / works.
 */
export async function startBaseline(stack: Stack, options: BaselineOptions): Promise<string> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  await stack.start({
    name: 'baseline',
    command: options.python,
    args: [
      '-m',
      'gunicorn',
      '--workers',
      String(options.workers ?? 2),
      '--worker-class',
      'sync',
      '--bind',
      `127.0.0.1:${port}`,
      '--chdir',
      `${ROOT}bench/baseline`,
      '--log-level',
      'warning',
      '--graceful-timeout',
      '5',
      'app:app',
    ],
    env: { REDIS_URL: options.redisUrl, REDIS_KEY_PREFIX: options.keyPrefix, PYTHONDONTWRITEBYTECODE: '1' },
    readyUrl: `${url}/`,
  });
  return url;
}
