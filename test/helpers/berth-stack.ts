// Counter, jokes, images and the gateway as processes on free loopback ports, each on the database,
// key prefix and stream given: the stack the campaigns attack through the gateway.
import { connect } from 'nats';
import type { Stack } from '../../bench/lib/stack.ts';
import { deleteKeys, plainRedis, testPrefix } from '../../services/counter/test/helpers.ts';
import { closedPort } from '../../services/gateway/test/helpers.ts';
import { createTestDatabase as imagesDatabase } from '../../services/images/test/helpers/database.ts';
import { deleteStream, NATS_URL, testStream } from '../../services/images/test/helpers/events.ts';
import { createTestDatabase as jokesDatabase } from '../../services/jokes/test/helpers/database.ts';

const root = new URL('../..', import.meta.url).pathname;

/** A campaign's own data: Redis key prefix, jokes and images databases, JetStream stream. */
export type BerthData = Awaited<ReturnType<typeof openBerthData>>;

/** Creates the data a stack runs on; close() removes all of it (what was made, if a step failed). */
export async function openBerthData() {
  const prefix = testPrefix();
  const stream = testStream();
  const redis = plainRedis();
  const [jokes, images] = await Promise.all([jokesDatabase(), imagesDatabase()]);
  return {
    prefix,
    stream,
    redis,
    jokes,
    images,
    async close() {
      await Promise.all([jokes.drop(), images.drop()]);
      await deleteKeys(redis, prefix);
      await redis.quit();
      const nc = await connect({ servers: NATS_URL });
      await deleteStream(nc, stream.name).catch(() => {});
      await nc.close();
    },
  };
}

/** Where the images service keeps its files, and settings beyond the defaults. */
export interface BerthStackOptions {
  imagesDir: string;
  images?: Record<string, string>;
  gateway: Record<string, string>;
}

/** Starts the four services in the stack (the gateway once the others are ready); the gateway's base URL. */
export async function startBerthStack(stack: Stack, data: BerthData, options: BerthStackOptions): Promise<string> {
  const [counterPort, jokesPort, imagesPort, gatewayPort] = await Promise.all([
    closedPort(),
    closedPort(),
    closedPort(),
    closedPort(),
  ]);
  const start = (name: string, port: number, env: Record<string, string>) =>
    stack.start({
      name,
      command: process.execPath,
      args: [`services/${name}/src/main.ts`],
      cwd: root,
      env: { HOST: '127.0.0.1', LOG_LEVEL: 'warn', PORT: String(port), ...env },
      readyUrl: `http://127.0.0.1:${port}/readyz`,
      // generous: a busy machine takes its time to load four processes; the campaigns are timed apart from it
      readyTimeoutMs: 120_000,
    });
  await Promise.all([
    start('counter', counterPort, { REDIS_KEY_PREFIX: `${data.prefix}counter:` }),
    start('jokes', jokesPort, { DATABASE_URL: data.jokes.url }),
    start('images', imagesPort, {
      DATABASE_URL: data.images.url,
      IMAGES_DIR: options.imagesDir,
      NATS_URL,
      EVENTS_STREAM: data.stream.name,
      EVENTS_SUBJECT_PREFIX: data.stream.subjectPrefix,
      ...options.images,
    }),
  ]);
  await start('gateway', gatewayPort, {
    COUNTER_URL: `http://127.0.0.1:${counterPort}`,
    JOKES_URL: `http://127.0.0.1:${jokesPort}`,
    IMAGES_URL: `http://127.0.0.1:${imagesPort}`,
    RATE_LIMIT_KEY_PREFIX: `${data.prefix}ratelimit:`,
    ...options.gateway,
  });
  return `http://127.0.0.1:${gatewayPort}`;
}
