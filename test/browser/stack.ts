import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropDatabase, withDatabase } from '@berth/service-kit';
import { Redis } from 'ioredis';
import { connect } from 'nats';
import { freePort } from '../../bench/lib/ports.ts';
import { ROOT, startGateway, startService } from '../../bench/lib/services.ts';
import { Stack } from '../../bench/lib/stack.ts';
import { prepareDatabase as prepareImages } from '../../services/images/src/setup.ts';
import { prepareDatabase as prepareJokes } from '../../services/jokes/src/setup.ts';

const SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const WORKER = join(ROOT, 'services/images/src/worker.ts');

/** The whole backend behind one gateway, as processes on free ports, with everything of its own. */
export interface UiStack {
  /** The gateway's base URL; the page is at `${url}/ui/`. */
  url: string;
  token: string;
  /** Whether the images-worker (near-duplicates, leaks) is part of this checkout and running. */
  worker: boolean;
  /** Stops one service, to see the page with it down. */
  stopService(name: 'counter' | 'jokes' | 'images'): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the page with the checkout's Vite config into `outDir`, so the test serves the source as it is now. */
export function buildUi(outDir: string): void {
  const vite = join(ROOT, 'node_modules/vite/bin/vite.js');
  const run = spawnSync(process.execPath, [vite, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], {
    cwd: join(ROOT, 'web'),
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (run.status !== 0) throw new Error(`vite build failed:\n${run.stdout}\n${run.stderr}`);
}

/**
 * Starts counter, jokes, images (and the images-worker when the checkout has it) and the gateway
 * with the page built into a temporary folder: own databases, Redis key prefix, JetStream stream
 * and subject prefix, all removed by stop().
 */
export async function startUiStack(): Promise<UiStack> {
  const tag = `${process.pid}_${randomBytes(4).toString('hex')}`;
  const token = randomBytes(24).toString('hex');
  const prefix = `uitest:${tag}:`;
  const stream = `UI_TEST_${tag}`;
  const subjects = `uitest_${tag}`;
  const jokesUrl = withDatabase(SERVER_URL, `jokes_ui_${tag}`);
  const imagesUrl = withDatabase(SERVER_URL, `images_ui_${tag}`);
  const dir = await mkdtemp(join(tmpdir(), 'berth-ui-'));
  const stack = new Stack();
  const names = new Map<string, number>();

  const cleanup = async () => {
    await stack.stop();
    await Promise.allSettled([dropDatabase(jokesUrl), dropDatabase(imagesUrl)]);
    const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
    try {
      await redis.connect();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(stream).catch(() => undefined);
    } finally {
      await nc.close();
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    buildUi(join(dir, 'ui'));
    await Promise.all([prepareJokes(jokesUrl, { seed: true }), prepareImages(imagesUrl)]);
    const events = {
      NATS_URL,
      EVENTS_STREAM: stream,
      EVENTS_SUBJECT_PREFIX: subjects,
      OUTBOX_POLL_MS: '50',
      DATABASE_URL: imagesUrl,
      IMAGES_DIR: join(dir, 'images'),
    };
    const counter = await startService(stack, 'counter', { REDIS_KEY_PREFIX: prefix });
    const jokes = await startService(stack, 'jokes', { DATABASE_URL: jokesUrl });
    const images = await startService(stack, 'images', events);
    names.set('counter', 0).set('jokes', 1).set('images', 2);
    const worker = existsSync(WORKER);
    if (worker) {
      const port = await freePort();
      await stack.start({
        name: 'images-worker',
        command: process.execPath,
        args: [WORKER],
        cwd: ROOT,
        env: { ...events, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', WORKER_CONSUMER: `ui_${tag}` },
        readyUrl: `http://127.0.0.1:${port}/readyz`,
      });
    }
    const url = await startGateway(
      stack,
      { counter, jokes, images },
      {
        API_TOKENS: token,
        UI_DIR: join(dir, 'ui'),
        // the tests make many pages, uploads and polls from one client; the limit is not what they are about
        RATE_LIMIT_MAX: '1000000',
        RATE_LIMIT_KEY_PREFIX: `${prefix}ratelimit:`,
        CIRCUIT_COOLDOWN_MS: '500',
      },
    );
    return {
      url,
      token,
      worker,
      async stopService(name) {
        const proc = stack.running[names.get(name) ?? -1];
        if (!proc || proc.exited) return;
        const exited = new Promise((resolve) => proc.child.once('exit', resolve));
        proc.child.kill('SIGTERM');
        await exited;
      },
      stop: cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}
