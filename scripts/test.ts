// `npm test`: makes sure Redis, PostgreSQL and NATS answer where the tests look for them (starting the
// ones docker-compose.yml defines with Docker when they do not and Docker is there), then runs node:test
// over every test file. Extra arguments go to `node --test`; file paths or globs among them replace the
// default set. TEST_REDIS_URL, TEST_DATABASE_URL and TEST_NATS_URL move the servers off the local defaults.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ComposeFile, isNodeService, loadCompose } from './lib/compose.ts';
import { portAnswers } from './lib/net.ts';

const DEFAULT_PATTERNS = ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'];

/** The loopback port of a server the tests reach at `url` (the URL's own port, else the scheme's). */
function portOf(url: string, standard: number): number {
  return Number(new URL(url).port) || standard;
}

/**
 * Infrastructure the tests use: where they look for it (the variable the test helpers read, or the
 * local default), how to recognise it in docker-compose.yml, the variable docker-compose.test.yml
 * publishes it on, and how to start it by hand.
 */
const INFRA = [
  {
    label: 'Redis',
    port: portOf(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', 6379),
    publishAs: 'TEST_REDIS_PORT',
    image: /(^|\/)redis(:|$)/,
    hint: (port: number) => `run \`redis-server --port ${port} --save ""\``,
  },
  {
    label: 'PostgreSQL',
    port: portOf(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', 5432),
    publishAs: 'TEST_POSTGRES_PORT',
    image: /(^|\/)postgres(:|$)/,
    hint: () => 'start PostgreSQL 15 or newer there (trust auth for 127.0.0.1)',
  },
  {
    label: 'NATS',
    port: portOf(process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222', 4222),
    publishAs: 'TEST_NATS_PORT',
    image: /(^|\/)nats(:|$)/,
    hint: (port: number) => `run \`nats-server -js -p ${port}\``,
  },
];

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stderr.write(`npm test: ${line}\n`);

function composeServiceFor(compose: ComposeFile, image: RegExp): string | undefined {
  // one-shot steps (restart "no") may use the same image, e.g. the secret steps; the server is the other one
  return Object.entries(compose.services).find(
    ([, s]) => !isNodeService(s) && s.restart !== 'no' && s.image && image.test(s.image),
  )?.[0];
}

function dockerWorks(): boolean {
  const quiet = { stdio: 'ignore', timeout: 15_000 } as const;
  return (
    spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], quiet).status === 0 &&
    spawnSync('docker', ['compose', 'version'], quiet).status === 0
  );
}

async function ensureInfrastructure(): Promise<void> {
  const compose = loadCompose(join(root, 'docker-compose.yml'));
  const probes = await Promise.all(INFRA.map(async (i) => ({ ...i, up: await portAnswers(i.port) })));
  const down = probes.filter((p) => !p.up);
  if (down.length === 0) return;

  const startable = down.flatMap((p) => composeServiceFor(compose, p.image) ?? []);
  if (startable.length > 0 && dockerWorks()) {
    say(`starting ${startable.join(', ')} with docker compose`);
    const files = ['-f', 'docker-compose.yml', '-f', 'docker-compose.test.yml'];
    const published = Object.fromEntries(INFRA.map((i) => [i.publishAs, String(i.port)]));
    const up = spawnSync('docker', ['compose', ...files, 'up', '-d', '--wait', ...startable], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, ...published },
    });
    if (up.status !== 0) say('docker compose could not start them; tests that need them will fail');
  }

  for (const p of down) {
    if (await portAnswers(p.port)) continue;
    const service = composeServiceFor(compose, p.image);
    const viaDocker = service
      ? `, or with Docker run \`docker compose -f docker-compose.yml -f docker-compose.test.yml up -d --wait ${service}\``
      : '';
    say(
      `${p.label} is not answering on 127.0.0.1:${p.port}: ${p.hint(p.port)}${viaDocker}; tests that need it will fail`,
    );
  }
}

function testArguments(extra: string[]): string[] {
  // A path or glob among the arguments narrows the run to it instead of every test file.
  const isTarget = (arg: string) => !arg.startsWith('-') && (arg.includes('*') || existsSync(join(root, arg)));
  const targets = extra.filter(isTarget);
  const flags = extra.filter((arg) => !isTarget(arg));
  // Each file runs in its own process; on a 2-core machine more than a few at once only adds contention.
  const concurrency = Math.min(4, Math.max(2, availableParallelism()));
  return ['--test', `--test-concurrency=${concurrency}`, ...flags, ...(targets.length ? targets : DEFAULT_PATTERNS)];
}

await ensureInfrastructure();
const result = spawnSync(process.execPath, testArguments(process.argv.slice(2)), { cwd: root, stdio: 'inherit' });
if (result.error) throw result.error;
process.exit(result.status ?? 1);
