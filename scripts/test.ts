// `npm test`: makes sure Redis, PostgreSQL and NATS answer at the local defaults (starting the ones
// docker-compose.yml defines with Docker when they do not and Docker is there), then runs node:test over
// every test file. Extra arguments go to `node --test`; file paths or globs among them replace the default set.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ComposeFile, isNodeService, loadCompose } from './lib/compose.ts';
import { portAnswers } from './lib/net.ts';

const DEFAULT_PATTERNS = ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'];

/** Infrastructure the tests use, how to recognise it in docker-compose.yml and how to start it by hand. */
const INFRA = [
  { label: 'Redis', port: 6379, image: /(^|\/)redis(:|$)/, hint: 'run `redis-server --port 6379 --save ""`' },
  {
    label: 'PostgreSQL',
    port: 5432,
    image: /(^|\/)postgres(:|$)/,
    hint: 'start PostgreSQL 15 or newer there (trust auth for 127.0.0.1)',
  },
  { label: 'NATS', port: 4222, image: /(^|\/)nats(:|$)/, hint: 'run `nats-server -js -p 4222`' },
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
    const up = spawnSync('docker', ['compose', ...files, 'up', '-d', '--wait', ...startable], {
      cwd: root,
      stdio: 'inherit',
    });
    if (up.status !== 0) say('docker compose could not start them; tests that need them will fail');
  }

  for (const p of down) {
    if (await portAnswers(p.port)) continue;
    const service = composeServiceFor(compose, p.image);
    const viaDocker = service
      ? `, or with Docker run \`docker compose -f docker-compose.yml -f docker-compose.test.yml up -d --wait ${service}\``
      : '';
    say(`${p.label} is not answering on 127.0.0.1:${p.port}: ${p.hint}${viaDocker}; tests that need it will fail`);
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
