// The Compose wiring checked against the code, offline (npm run test:containers runs the real stack):
// ports, env names each service's config accepts, healthchecks, depends_on conditions, published ports.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo, createServer as netServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@berth/service-kit';
import { parseAllDocuments } from 'yaml';
import { IMAGES_NODE_OPTIONS } from '../bench/scenarios/images.ts';
import {
  buildArgsOf,
  type ComposeFile,
  type ComposeService,
  dependenciesOf,
  environmentOf,
  infraEndpoints,
  isNodeService,
  loadCompose,
  localize,
  nativeServices,
  nativeVariables,
  publishedPorts,
  startOrder,
  urlTarget,
} from '../scripts/lib/compose.ts';
import { interpolate } from '../scripts/lib/interpolate.ts';
import { migrationPlan } from '../scripts/lib/migrate.ts';
import { assertEnvironmentFits, configSchema, processEnvironments, withMigrations } from './helpers/env-schemas.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const composePath = join(root, 'docker-compose.yml');
// Interpolated with no variables set: what a fresh clone without .env gets.
const compose = loadCompose(composePath, { env: {} });
const raw = loadCompose(composePath, { interpolate: false });
const services = Object.entries(compose.services);
const nodeServices = services.filter(([, s]) => isNodeService(s));
/** One-shot steps (migrations, secret set-up) run to completion: restart "no" with a command of their own. */
const isOneShot = (s: ComposeService) => s.restart === 'no';
const servers = nodeServices.filter(([, s]) => !isOneShot(s));
const steps = nodeServices.filter(([, s]) => isOneShot(s));
const infraServices = services.filter(([, s]) => !isNodeService(s) && !isOneShot(s));
const longRunning = services.filter(([, s]) => !isOneShot(s));
/** Services `docker compose up` starts; the others sit behind a profile (pgAdmin under `tools`). */
const inDefaultProfile = ([, s]: [string, ComposeService]) => !(s.profiles as string[] | undefined)?.length;

/** DESIGN.md's port table, by Compose service (the worker's own port serves health and metrics). */
const DESIGN_PORTS: Record<string, number> = {
  gateway: 5000,
  counter: 3001,
  jokes: 3002,
  images: 3003,
  'images-worker': 3004,
};
/** Where each kind of infrastructure listens inside the Compose network. */
const INFRA_PORTS: Array<[RegExp, number]> = [
  [/(^|\/)redis:/, 6379],
  [/(^|\/)postgres:/, 5432],
  [/(^|\/)nats:/, 4222],
];
const TERMINAL_CONDITIONS = ['service_healthy', 'service_completed_successfully'];

function dirOf(service: ComposeService): string {
  return buildArgsOf(service).SERVICE ?? '';
}

/** The image's WORKDIR relative to the repository: services/<SERVICE>, or the root for repository-wide steps. */
function cwdOf(service: ComposeService): string {
  const dir = dirOf(service);
  return dir ? join('services', dir) : '.';
}

function healthText(service: ComposeService): string {
  const check = service.healthcheck?.test;
  return Array.isArray(check) ? check.join(' ') : (check ?? '');
}

/** The port a Compose service listens on inside the network. */
function listenPort(name: string): number | undefined {
  const service = compose.services[name];
  if (!service) return undefined;
  if (isNodeService(service)) return Number(environmentOf(service).PORT ?? DESIGN_PORTS[dirOf(service)]);
  return INFRA_PORTS.find(([image]) => image.test(service.image ?? ''))?.[1];
}

/** The script a Node service runs, relative to its directory: src/main.ts unless Compose names another. */
function scriptOf(service: ComposeService): string {
  const command = service.command;
  const argv = Array.isArray(command) ? command : (command?.split(/\s+/) ?? ['node', 'src/main.ts']);
  // node's own flags (--max-semi-space-size=4 …) come before the script
  return argv.slice(1).find((arg) => !arg.startsWith('-')) ?? 'src/main.ts';
}

/** The exit code of `node -e <script>`, as a container healthcheck runs it. */
function exitOf(script: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore', timeout: 10_000 });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

/** A loopback port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = netServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('docker-compose.yml', () => {
  test('has every service of the backend, the migrate step, the infrastructure and pgAdmin', () => {
    const expected = ['gateway', 'counter', 'jokes', 'images', 'images-worker', 'migrate', 'redis', 'db', 'nats'];
    for (const name of [...expected, 'pgadmin']) assert.ok(compose.services[name], `service "${name}" missing`);
    assert.deepEqual(compose.services.pgadmin?.profiles, ['tools'], 'pgAdmin only with --profile tools');
  });

  test('only the gateway publishes a port, 5000 on 5000; pgAdmin (profile tools) only on loopback', () => {
    const publishing = services.filter(inDefaultProfile).filter(([, s]) => (s.ports ?? []).length > 0);
    assert.deepEqual(
      publishing.map(([name]) => name),
      ['gateway'],
    );
    assert.deepEqual(publishedPorts(compose.services.gateway as ComposeService), [{ published: 5000, target: 5000 }]);
    assert.deepEqual(compose.services.pgadmin?.ports, ['127.0.0.1:5050:5050']);
  });

  test('every Node service is built from infra/Dockerfile with the repository as context', () => {
    assert.ok(nodeServices.length > 0);
    for (const [name, service] of nodeServices) {
      const build = service.build;
      assert.ok(build && typeof build === 'object', `${name}: build must be a map`);
      assert.equal(build.context, '.', `${name}: build context`);
      assert.equal(build.dockerfile, 'infra/Dockerfile', `${name}: dockerfile`);
      const script = join(cwdOf(service), scriptOf(service));
      assert.ok(existsSync(join(root, script)), `${name}: ${script} does not exist`);
    }
  });

  test("each Node service listens on DESIGN.md's port and its healthcheck hits that port's /healthz", async () => {
    for (const [name, service] of servers) {
      const expected = DESIGN_PORTS[name];
      assert.ok(expected, `${name} has no port in DESIGN.md`);
      const schema = await configSchema(dirOf(service), scriptOf(service));
      const config = loadConfig(schema, environmentOf(service)) as { PORT: number };
      assert.equal(config.PORT, expected, `${name}: PORT`);
      const text = healthText(service);
      assert.ok(text.includes(`http://127.0.0.1:${expected}/healthz`), `${name}: healthcheck "${text}"`);
      assert.equal(service.healthcheck?.test?.[0], 'CMD', `${name}: healthcheck runs without a shell`);
    }
  });

  test('a Node service healthcheck passes on 200 and fails on 503 or a closed port, without loading fetch', async () => {
    for (const [name, service] of servers) {
      const argv = service.healthcheck?.test as string[];
      assert.deepEqual(argv.slice(0, 3), ['CMD', 'node', '-e'], `${name}: node -e`);
      // fetch pulls in undici: twice the start-up of node:http, which is what a loaded machine felt
      assert.doesNotMatch(argv[3] ?? '', /fetch\(/, `${name}: no fetch`);
      const script = (port: number) => (argv[3] ?? '').replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`);
      for (const [status, exitCode] of [
        [200, 0],
        [503, 1],
      ] as const) {
        const server = createServer((request, response) => {
          response.statusCode = request.url === '/healthz' ? status : 404;
          response.end();
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const { port } = server.address() as AddressInfo;
        try {
          assert.equal(await exitOf(script(port)), exitCode, `${name}: exit code on ${status}`);
        } finally {
          await new Promise((resolve) => server.close(resolve));
        }
      }
      assert.equal(await exitOf(script(await closedPort())), 1, `${name}: exit code with nothing listening`);
    }
  });

  test('healthchecks leave room for a loaded machine: 60 s to start, 10 s to answer, checked each second while starting', () => {
    const seconds = (value: string | undefined) => Number(/^(\d+)s$/.exec(value ?? '')?.[1] ?? Number.NaN);
    for (const [name, service] of longRunning) {
      const check = service.healthcheck ?? {};
      // Node services took up to 19 s to listen on a busy 2-core machine; a check up to several seconds
      assert.ok(seconds(check.start_period) >= 60, `${name}: start_period "${check.start_period}"`);
      assert.ok(seconds(check.timeout) >= 10, `${name}: timeout "${check.timeout}"`);
      assert.equal(check.start_interval, '1s', `${name}: start_interval`);
      assert.ok(seconds(check.interval) >= seconds(check.timeout), `${name}: interval at least the timeout`);
    }
  });

  test("pgAdmin's registered server is the database, with the user and database the database is set up with", () => {
    for (const env of [{}, { POSTGRES_USER: 'alice' }]) {
      const file = loadCompose(composePath, { env });
      const pgadmin = file.services.pgadmin as ComposeService;
      const db = environmentOf(file.services.db as ComposeService);
      const mounted = (pgadmin.configs as Array<{ source: string; target: string }>)[0];
      assert.equal(mounted?.target, environmentOf(pgadmin).PGADMIN_SERVER_JSON_FILE);
      const configs = file.configs as Record<string, { content: string }>;
      const servers = JSON.parse(configs[mounted?.source ?? '']?.content ?? '{}').Servers;
      const [server] = Object.values(servers) as Array<Record<string, unknown>>;
      assert.equal(server?.Host, 'db');
      assert.equal(server?.Port, listenPort('db'));
      assert.equal(server?.Username, db.POSTGRES_USER);
      assert.equal(server?.Username, env.POSTGRES_USER ?? 'admin');
      assert.equal(server?.MaintenanceDB, db.POSTGRES_DB);
    }
  });

  test('every env name given to a Node service is one its config schema accepts, with a valid value', async () => {
    for (const [name, service] of nodeServices) {
      const envs = await processEnvironments(
        name,
        dirOf(service) || undefined,
        scriptOf(service),
        environmentOf(service),
      );
      for (const proc of envs) assertEnvironmentFits(proc);
    }
  });

  test('images-worker runs the images image with the worker entry point and WorkerEnv', async () => {
    const worker = compose.services['images-worker'] as ComposeService;
    assert.deepEqual(worker.build, compose.services.images?.build);
    assert.equal((worker.command as string[]).at(-1), 'src/worker.ts');
    const schema = await configSchema('images', 'src/worker.ts');
    assert.ok(schema.properties.WORKER_CONSUMER, 'services/images/src/worker-config.ts exports WorkerEnv');
    const env = environmentOf(worker);
    assert.equal(env.NATS_URL, environmentOf(compose.services.images as ComposeService).NATS_URL);
    assert.equal(env.DATABASE_URL, environmentOf(compose.services.images as ComposeService).DATABASE_URL);
  });

  test('the images service and its worker run with the same V8 heap flags in compose, Kubernetes, npm start and the bench', () => {
    const flags = (argv: string[]) => argv.filter((arg) => arg.startsWith('--'));
    const expected = IMAGES_NODE_OPTIONS.split(' ');
    const pkg = JSON.parse(readFileSync(join(root, 'services', 'images', 'package.json'), 'utf8'));
    for (const [service, manifestFile, script] of [
      ['images', 'images.yaml', 'start'],
      ['images-worker', 'images-worker.yaml', 'worker'],
    ] as const) {
      assert.deepEqual(
        flags(compose.services[service]?.command as string[]),
        expected,
        `docker-compose.yml ${service}`,
      );
      const manifest = parseAllDocuments(readFileSync(join(root, 'infra', 'k8s', manifestFile), 'utf8'))
        .map((doc) => doc.toJS())
        .find((object) => object?.kind === 'Deployment');
      assert.deepEqual(flags(manifest.spec.template.spec.containers[0].command), expected, `infra/k8s/${manifestFile}`);
      assert.deepEqual(flags(pkg.scripts[script].split(' ')), expected, `services/images npm run ${script}`);
    }
    // the old generation's cap leaves room under the container's memory limit for everything else
    const oldSpaceMiB = Number(/--max-old-space-size=(\d+)/.exec(IMAGES_NODE_OPTIONS)?.[1]);
    const [, amount, unit] = /^(\d+)([mg])$/.exec(String(compose.services.images?.mem_limit)) ?? [];
    const limitMiB = Number(amount) * (unit === 'g' ? 1024 : 1);
    assert.ok(oldSpaceMiB * 2 <= limitMiB, `old space ${oldSpaceMiB} MiB leaves too little of ${limitMiB} MiB`);
  });

  test('one migrate step migrates every database a service uses, and those services wait for it', () => {
    const migrate = compose.services.migrate as ComposeService;
    assert.equal(migrate.restart, 'no');
    const plan = migrationPlan(environmentOf(migrate), withMigrations);
    const build = migrate.build as { target?: string };
    assert.equal(build.target, 'migrate');
    assert.deepEqual(
      buildArgsOf(migrate).MIGRATE_SERVICES?.split(/\s+/).sort(),
      plan.map((m) => m.service).sort(),
      'the image holds exactly the services the step migrates',
    );
    for (const [name, service] of servers) {
      const url = environmentOf(service).DATABASE_URL;
      if (!url) continue;
      const migrated = plan.find((m) => m.service === dirOf(service));
      assert.equal(migrated?.env.DATABASE_URL, url, `${name}: its database is migrated by the migrate step`);
      assert.equal(dependenciesOf(service).migrate, 'service_completed_successfully', `${name} waits for migrate`);
    }
    assert.deepEqual(
      nodeServices.filter(([, s]) => isOneShot(s)).map(([name]) => name),
      ['migrate'],
      'no per-service migrate steps beside it',
    );
  });

  test('NATS runs JetStream on the nats-data volume with monitoring for its healthcheck only', () => {
    const nats = compose.services.nats as ComposeService;
    assert.match(nats.image ?? '', /^nats:2[\w.-]*-alpine$/);
    assert.deepEqual(nats.command, ['-c', '/etc/nats/berth.conf']);
    assert.ok((nats.volumes as string[] | undefined)?.includes('nats-data:/data'));
    assert.ok((nats.volumes as string[] | undefined)?.includes('./infra/nats/berth.conf:/etc/nats/berth.conf:ro'));
    // every write on disk before the PubAck the outbox relies on
    const conf = readFileSync(join(root, 'infra', 'nats', 'berth.conf'), 'utf8');
    assert.match(conf, /^jetstream \{\n {2}store_dir: \/data\n {2}sync_interval: always\n\}$/m);
    assert.match(conf, /^http_port: 8222$/m);
    assert.deepEqual(nats.healthcheck?.test, [
      'CMD',
      'wget',
      '-q',
      '-O',
      '/dev/null',
      'http://127.0.0.1:8222/healthz?js-enabled-only=true',
    ]);
    assert.equal(nats.ports, undefined, 'the monitoring port is not published');
    assert.equal(environmentOf(compose.services.images as ComposeService).NATS_URL, 'nats://nats:4222');
  });

  test('named volumes hold the data: database, images, the inbox and the JetStream store', () => {
    const declared = Object.keys((compose.volumes as Record<string, unknown>) ?? {});
    for (const volume of ['db-data', 'images-data', 'nats-data', 'images-inbox']) {
      assert.ok(declared.includes(volume), `volume "${volume}" is declared`);
    }
    const images = environmentOf(compose.services.images as ComposeService);
    assert.equal(images.INBOX_DIR, '/data/inbox');
    const mounts = (name: string) => (compose.services[name]?.volumes as string[] | undefined) ?? [];
    assert.ok(mounts('images').includes('images-inbox:/data/inbox'));
    assert.ok(mounts('db').includes('db-data:/var/lib/postgresql/data'));
  });

  test('every long-running service has a healthcheck, a restart policy, a memory limit and time to drain', () => {
    for (const [name, service] of longRunning) {
      assert.ok(service.healthcheck?.test, `${name}: healthcheck`);
      assert.equal(service.restart, 'unless-stopped', `${name}: restart`);
      assert.match(String(service.mem_limit ?? ''), /^\d+[mg]$/, `${name}: mem_limit`);
      const grace = /^(\d+)s$/.exec(String(service.stop_grace_period ?? ''));
      assert.ok(grace && Number(grace[1]) > 10, `${name}: stop_grace_period longer than the 10 s drain`);
    }
  });

  test('services run as non-root users on read-only root file systems where the image allows it', () => {
    // pgAdmin rewrites its own configuration at start, so its root file system stays writable
    const writableRoot = ['pgadmin'];
    for (const [name, service] of longRunning) {
      if (!writableRoot.includes(name)) assert.equal(service.read_only, true, `${name}: read_only`);
      assert.notEqual(service.user, 'root', `${name}: user`);
      // Node services take the image's USER node; the infrastructure images name their own user
      if (!isNodeService(service) && name !== 'pgadmin') assert.ok(service.user, `${name}: user`);
    }
    for (const [name, service] of nodeServices) {
      assert.deepEqual(service.cap_drop, ['ALL'], `${name}: capabilities`);
      assert.equal(service.user, undefined, `${name}: runs as the image's node user`);
    }
  });

  test('URLs point at Compose services that exist, on the port they listen on', () => {
    for (const [name, service] of nodeServices) {
      for (const [key, value] of Object.entries(environmentOf(service))) {
        const target = urlTarget(value);
        if (!target) continue;
        assert.ok(compose.services[target.host], `${name}: ${key}="${value}" names no Compose service`);
        assert.equal(target.port, listenPort(target.host), `${name}: ${key}="${value}" port`);
      }
    }
    const counter = environmentOf(compose.services.gateway as ComposeService);
    assert.equal(counter.COUNTER_URL, 'http://counter:3001');
  });

  test('depends_on waits for health (or completion) and every awaited service has a healthcheck', () => {
    for (const [name, service] of services) {
      for (const [dep, condition] of Object.entries(dependenciesOf(service))) {
        const target = compose.services[dep];
        assert.ok(target, `${name} depends on "${dep}", which is not a service`);
        assert.ok(TERMINAL_CONDITIONS.includes(condition), `${name} -> ${dep}: condition "${condition}"`);
        if (condition === 'service_healthy') assert.ok(target.healthcheck?.test, `${dep} has no healthcheck`);
      }
    }
    assert.equal(dependenciesOf(compose.services.counter as ComposeService).redis, 'service_healthy');
    assert.equal(dependenciesOf(compose.services.gateway as ComposeService).counter, 'service_healthy');
  });

  test('infrastructure services use a pinned image and have a healthcheck', () => {
    assert.ok(infraServices.length > 0);
    for (const [name, service] of infraServices) {
      assert.match(service.image ?? '', /:[\w.-]+$/, `${name}: image needs a tag`);
      assert.doesNotMatch(service.image ?? '', /:latest$/, `${name}: image must not be :latest`);
      assert.ok(service.healthcheck?.test, `${name}: no healthcheck`);
    }
    assert.deepEqual(compose.services.redis?.healthcheck?.test, ['CMD', 'redis-cli', 'ping']);
  });

  test('Node services restart unless stopped; one-shot steps run once and something waits for them', () => {
    for (const [name, service] of servers) assert.equal(service.restart, 'unless-stopped', name);
    assert.ok(steps.length > 0);
    for (const [name] of [...steps, ...services.filter(([, s]) => !isNodeService(s) && isOneShot(s))]) {
      const waiting = services.filter(([, s]) => dependenciesOf(s)[name] === 'service_completed_successfully');
      assert.ok(waiting.length > 0, `nothing waits for ${name} to complete`);
    }
  });

  test('the database password reaches PostgreSQL and its clients only as a secret file', () => {
    const db = environmentOf(compose.services.db as ComposeService);
    assert.equal(db.POSTGRES_PASSWORD, undefined);
    assert.equal(db.POSTGRES_PASSWORD_FILE, '/run/secrets/berth/db-password');
    for (const [name, service] of nodeServices) {
      const env = environmentOf(service);
      if (!env.DATABASE_URL) continue;
      assert.doesNotMatch(env.DATABASE_URL, /\/\/[^@/]*:[^@/]*@/, `${name}: DATABASE_URL carries a password`);
      assert.equal(env.DATABASE_PASSWORD_FILE, db.POSTGRES_PASSWORD_FILE, `${name}: DATABASE_PASSWORD_FILE`);
      assert.ok(
        (service.volumes as string[] | undefined)?.includes('db-secret:/run/secrets/berth:ro'),
        `${name}: mounts the secret read-only`,
      );
    }
  });

  test('the gateway takes its API tokens from .env or a secret file and counts rate limits in Redis', () => {
    const rawEnv = environmentOf(raw.services.gateway as ComposeService);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's own ${} syntax
    assert.equal(rawEnv.API_TOKENS, '${API_TOKENS:-}', 'empty unless .env sets it, so a fresh clone starts');
    const env = environmentOf(compose.services.gateway as ComposeService);
    assert.match(env.API_TOKENS_FILE ?? '', /^\/run\/secrets\//, 'a container secret, left out of native runs');
    assert.equal(env.REDIS_URL, 'redis://redis:6379');
    const native = nativeServices(loadCompose(composePath, { env: nativeVariables(root, {}) }));
    assert.equal(native.find((s) => s.name === 'gateway')?.env.API_TOKENS_FILE, undefined);
  });

  test('nothing secret-looking is written inline', () => {
    const secretName = /PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL/i;
    for (const [name, service] of Object.entries(raw.services)) {
      for (const [key, value] of Object.entries(environmentOf(service))) {
        // a *_FILE variable names where a secret is mounted, not the secret
        if (secretName.test(key) && !key.endsWith('_FILE') && value !== '') {
          // a switch such as READS_REQUIRE_TOKEN may default to true or false: that is no secret
          assert.match(
            value,
            /^\$\{[A-Z0-9_]+((:?\?[^}]*)|:-|:-true|:-false)?\}$/,
            `${name}: ${key} must come from a variable`,
          );
        }
        // interpolated with no variables set, a password that comes from a variable is empty
        const interpolated = environmentOf(compose.services[name] as ComposeService)[key] ?? '';
        const password = /^[a-z][a-z0-9+.-]*:\/\/[^:@/]*:([^@/]+)@/i.exec(interpolated)?.[1];
        assert.equal(password, undefined, `${name}: ${key} has a password written inline`);
      }
    }
  });

  test('every variable it interpolates is listed in .env.example', () => {
    const text = readFileSync(composePath, 'utf8');
    const used = new Set([...text.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]));
    const example = readFileSync(join(root, '.env.example'), 'utf8');
    for (const name of used) {
      assert.match(example, new RegExp(`^(# )?${name}=`, 'm'), `${name} missing from .env.example`);
    }
  });
});

describe('docker-compose.test.yml', () => {
  const override = loadCompose(join(root, 'docker-compose.test.yml'), { env: {} }) as ComposeFile;

  test('only publishes infrastructure ports, on loopback, at their standard numbers', () => {
    for (const [name, service] of Object.entries(override.services)) {
      const base = compose.services[name];
      assert.ok(base, `"${name}" is not in docker-compose.yml`);
      assert.ok(!isNodeService(base), `${name} is a Node service; tests start those themselves`);
      for (const port of service.ports ?? []) assert.match(String(port), /^127\.0\.0\.1:/, `${name}: "${port}"`);
      const expected = listenPort(name);
      assert.deepEqual(publishedPorts(service), [{ published: expected, target: expected }]);
    }
    assert.ok(override.services.redis, 'Redis is published for npm test');
    assert.ok(override.services.nats, 'NATS is published for npm test');
  });

  test('TEST_REDIS_PORT, TEST_POSTGRES_PORT and TEST_NATS_PORT move the published ports', () => {
    const env = { TEST_REDIS_PORT: '16379', TEST_POSTGRES_PORT: '15432', TEST_NATS_PORT: '14222' };
    const moved = loadCompose(join(root, 'docker-compose.test.yml'), { env }) as ComposeFile;
    assert.deepEqual(
      ['redis', 'db', 'nats'].map((name) => publishedPorts(moved.services[name] as ComposeService)),
      [
        [{ published: 16379, target: 6379 }],
        [{ published: 15432, target: 5432 }],
        [{ published: 14222, target: 4222 }],
      ],
    );
  });
});

describe('infra/Dockerfile', () => {
  const dockerfile = readFileSync(join(root, 'infra', 'Dockerfile'), 'utf8');

  test('builds any service from node:24-alpine as a non-root user with production dependencies only', () => {
    assert.match(dockerfile, /^ARG SERVICE$/m);
    assert.match(dockerfile, /node:24-alpine/);
    assert.match(dockerfile, /npm ci --omit=dev --workspace "services\/\$\{SERVICE\}"/);
    assert.match(dockerfile, /^USER node$/m);
    assert.match(dockerfile, /^CMD \["node", "src\/main\.ts"\]$/m);
  });

  test("uses the builder's own Dockerfile frontend: a syntax line would fetch one from a registry", () => {
    assert.doesNotMatch(dockerfile, /^#\s*syntax\s*=/im);
  });

  test('has a migrate target that runs scripts/migrate.ts as node, and the default target comes last', () => {
    assert.match(dockerfile, /^FROM \$\{NODE_IMAGE\} AS migrate$/m);
    assert.match(dockerfile, /^CMD \["node", "scripts\/migrate\.ts"\]$/m);
    const stages = [...dockerfile.matchAll(/^FROM .*$/gm)].map((m) => m[0]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own ${} syntax
    assert.equal(stages.at(-1), 'FROM ${NODE_IMAGE}', 'docker build without --target builds a service');
  });
});

describe('scripts/lib/migrate.ts', () => {
  test('hands each service its own <SERVICE>_ variables without the prefix and the shared ones as they are', () => {
    const plan = migrationPlan(
      {
        LOG_LEVEL: 'warn',
        JOKES_DATABASE_URL: 'postgres://db/jokes',
        IMAGES_DATABASE_URL: 'postgres://db/images',
        IMAGES_MIGRATE_WAIT_MS: '5',
        COUNTER_X: 'left out: counter has no DATABASE_URL here',
      },
      ['counter', 'images', 'jokes'],
    );
    assert.deepEqual(plan, [
      {
        service: 'images',
        env: {
          LOG_LEVEL: 'warn',
          COUNTER_X: 'left out: counter has no DATABASE_URL here',
          DATABASE_URL: 'postgres://db/images',
          MIGRATE_WAIT_MS: '5',
        },
      },
      {
        service: 'jokes',
        env: {
          LOG_LEVEL: 'warn',
          COUNTER_X: 'left out: counter has no DATABASE_URL here',
          DATABASE_URL: 'postgres://db/jokes',
        },
      },
    ]);
  });

  test('finds the services that have a migrate command', () => {
    assert.deepEqual(withMigrations, ['images', 'jokes']);
  });
});

describe('scripts/lib/compose.ts', () => {
  test('maps the Compose file to native services with host names pointed at 127.0.0.1', () => {
    const local = loadCompose(composePath, { env: nativeVariables(root, {}) });
    const native = startOrder(nativeServices(local));
    assert.deepEqual(
      native.map((s) => [s.name, s.cwd, s.port, s.oneShot, s.args.join(' ')]),
      [
        ['counter', 'services/counter', 3001, false, 'src/main.ts'],
        ['migrate', '.', undefined, true, 'scripts/migrate.ts'],
        ['jokes', 'services/jokes', 3002, false, 'src/main.ts'],
        ['images', 'services/images', 3003, false, '--max-semi-space-size=4 --max-old-space-size=256 src/main.ts'],
        ['gateway', 'services/gateway', 5000, false, 'src/main.ts'],
        [
          'images-worker',
          'services/images',
          3004,
          false,
          '--max-semi-space-size=4 --max-old-space-size=256 src/worker.ts',
        ],
      ],
    );
    const byName = Object.fromEntries(native.map((s) => [s.name, s]));
    assert.equal(byName.counter?.env.REDIS_URL, 'redis://127.0.0.1:6379');
    assert.equal(byName.gateway?.env.COUNTER_URL, 'http://127.0.0.1:3001');
    assert.equal(byName.gateway?.env.JOKES_URL, 'http://127.0.0.1:3002');
    assert.equal(byName.gateway?.env.IMAGES_URL, 'http://127.0.0.1:3003');
    assert.deepEqual(byName.gateway?.dependsOn, ['counter', 'jokes', 'images', 'gateway-secret']);
    assert.deepEqual(byName.jokes?.conditions, { migrate: 'service_completed_successfully' });
    // natively the local superuser, trusted on loopback, and no container secret file
    assert.equal(byName.jokes?.env.DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/ms3_jokes');
    assert.equal(byName.jokes?.env.DATABASE_PASSWORD_FILE, undefined);
    assert.equal(byName.migrate?.env.JOKES_DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/ms3_jokes');
    assert.equal(byName.migrate?.env.DATABASE_PASSWORD_FILE, undefined);
    // a named volume becomes a folder of the checkout
    assert.equal(byName.images?.env.IMAGES_DIR, join(root, '.data', 'images-data'));
    assert.equal(byName.images?.env.INBOX_DIR, join(root, '.data', 'images-inbox'));
    assert.equal(byName['images-worker']?.env.IMAGES_DIR, join(root, '.data', 'images-data'));
    assert.equal(byName.images?.env.NATS_URL, 'nats://127.0.0.1:4222');
    // pgAdmin is no Node service: npm start leaves it out
    assert.equal(byName.pgadmin, undefined);
    assert.deepEqual(
      infraEndpoints(local)
        .map((e) => [e.name, e.port])
        .sort(),
      [
        ['db', 5432],
        ['nats', 4222],
        ['redis', 6379],
      ],
    );
  });

  test('a published port in front of the service becomes its native port', () => {
    const moved = loadCompose(composePath, { env: { GATEWAY_PORT: '5050' } });
    const gateway = nativeServices(moved).find((s) => s.name === 'gateway');
    assert.equal(gateway?.port, 5050);
    assert.equal(gateway?.env.PORT, '5050');
  });

  test('localize rewrites only whole Compose host names and keeps the rest of the URL', () => {
    const hosts = new Set(['db', 'counter']);
    assert.equal(localize('postgres://app:pw@db:5432/jokes?x=1', hosts), 'postgres://app:pw@127.0.0.1:5432/jokes?x=1');
    assert.equal(localize('http://counter', hosts), 'http://127.0.0.1');
    assert.equal(localize('http://counterx:3001', hosts), 'http://counterx:3001');
    assert.equal(localize('http://example.com/db', hosts), 'http://example.com/db');
    assert.equal(localize('counter', hosts), 'counter');
  });

  test('startOrder puts dependencies first and rejects a cycle', () => {
    const svc = (name: string, dependsOn: string[]) => ({
      name,
      service: name,
      cwd: `services/${name}`,
      env: {},
      dependsOn,
      conditions: {},
      port: undefined,
      args: ['src/main.ts'],
      oneShot: false,
    });
    const order = startOrder([svc('a', ['b']), svc('b', ['c', 'redis']), svc('c', [])]).map((s) => s.name);
    assert.deepEqual(order, ['c', 'b', 'a']);
    assert.throws(() => startOrder([svc('a', ['b']), svc('b', ['a'])]), /cycle: a -> b -> a/);
  });

  test('interpolation follows Compose: defaults, empty versus unset, required, $$', () => {
    const vars = { SET: 'x', EMPTY: '' };
    // biome-ignore-start lint/suspicious/noTemplateCurlyInString: Compose's own ${} syntax is under test
    assert.equal(interpolate('${SET:-d} ${EMPTY:-d} ${UNSET:-d}', vars), 'x d d');
    assert.equal(interpolate('${EMPTY-d} ${UNSET-d}', vars), ' d');
    assert.equal(interpolate('$SET ${SET} $${SET} ${UNSET}', vars), 'x x ${SET} ');
    assert.equal(interpolate('${SET:+on} ${EMPTY:+on} ${EMPTY+on}', vars), 'on  on');
    assert.throws(() => interpolate('${UNSET:?set it in .env}', vars), /Variable "UNSET" is required: set it in \.env/);
    // biome-ignore-end lint/suspicious/noTemplateCurlyInString: Compose's own ${} syntax is under test
  });
});
