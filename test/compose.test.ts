// No Docker engine runs where the tests run, so the Compose wiring is checked against the code here:
// ports, env names each service's config accepts, healthchecks, depends_on conditions, published ports.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '@berth/service-kit';
import type { TObject } from 'typebox';
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

/** DESIGN.md's port table. */
const DESIGN_PORTS: Record<string, number> = { gateway: 5000, counter: 3001, jokes: 3002, images: 3003 };
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
  // node's own flags (--max-semi-space-size=4) come before the script
  return argv.slice(1).find((arg) => !arg.startsWith('-')) ?? 'src/main.ts';
}

const capitalized = (word: string) => `${word[0]?.toUpperCase()}${word.slice(1)}`;

const schemas = new Map<string, TObject>();
/** A service's env schema: <Service>Env for src/main.ts, <Script>Env for another script (src/migrate.ts: MigrateEnv). */
async function configSchema(dir: string, script = 'src/main.ts'): Promise<TObject> {
  const key = `${dir}:${script}`;
  const cached = schemas.get(key);
  if (cached) return cached;
  const file = join(root, 'services', dir, 'src', 'config.ts');
  assert.ok(existsSync(file), `services/${dir}/src/config.ts does not exist, but "${dir}" is in docker-compose.yml`);
  const base = script === 'src/main.ts' ? dir : (script.split('/').pop()?.replace(/\.ts$/, '') ?? dir);
  const exportName = `${capitalized(base)}Env`;
  const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const schema = module[exportName] as TObject | undefined;
  assert.ok(schema?.properties, `services/${dir}/src/config.ts must export its env schema as "${exportName}"`);
  schemas.set(key, schema);
  return schema;
}

describe('docker-compose.yml', () => {
  test('has the gateway, the counter, jokes with its migrate step, Redis and PostgreSQL', () => {
    for (const name of ['gateway', 'counter', 'jokes', 'jokes-migrate', 'images', 'images-migrate', 'redis', 'db']) {
      assert.ok(compose.services[name], `service "${name}" missing`);
    }
  });

  test('only the gateway publishes a port, and it is 5000 on 5000', () => {
    const publishing = services.filter(([, s]) => (s.ports ?? []).length > 0).map(([name]) => name);
    assert.deepEqual(publishing, ['gateway']);
    assert.deepEqual(publishedPorts(compose.services.gateway as ComposeService), [{ published: 5000, target: 5000 }]);
  });

  test('every Node service is built from infra/Dockerfile with the repository as context', () => {
    assert.ok(nodeServices.length > 0);
    for (const [name, service] of nodeServices) {
      const build = service.build;
      assert.ok(build && typeof build === 'object', `${name}: build must be a map`);
      assert.equal(build.context, '.', `${name}: build context`);
      assert.equal(build.dockerfile, 'infra/Dockerfile', `${name}: dockerfile`);
      const script = scriptOf(service);
      const entry = join(root, 'services', dirOf(service), script);
      assert.ok(existsSync(entry), `${name}: services/${dirOf(service)}/${script} does not exist`);
    }
  });

  test("each Node service listens on DESIGN.md's port and its healthcheck hits that port's /healthz", async () => {
    for (const [name, service] of servers) {
      const dir = dirOf(service);
      const expected = DESIGN_PORTS[dir];
      assert.ok(expected, `${name}: "${dir}" has no port in DESIGN.md`);
      const schema = await configSchema(dir);
      const config = loadConfig(schema, environmentOf(service)) as { PORT: number };
      assert.equal(config.PORT, expected, `${name}: PORT`);
      const text = healthText(service);
      assert.ok(text.includes(`http://127.0.0.1:${expected}/healthz`), `${name}: healthcheck "${text}"`);
      assert.equal(service.healthcheck?.test?.[0], 'CMD', `${name}: healthcheck runs without a shell`);
    }
  });

  test('every env name given to a Node service is one its config schema accepts, with a valid value', async () => {
    for (const [name, service] of nodeServices) {
      const schema = await configSchema(dirOf(service), scriptOf(service));
      const env = environmentOf(service);
      const accepted = Object.keys(schema.properties);
      for (const key of Object.keys(env)) {
        assert.ok(accepted.includes(key), `${name}: ${key} is not in its config schema (${accepted.join(', ')})`);
      }
      assert.doesNotThrow(() => loadConfig(schema, env), `${name}: its Compose environment does not validate`);
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
          assert.match(value, /^\$\{[A-Z0-9_]+((:?\?[^}]*)|:-)?\}$/, `${name}: ${key} must come from a variable`);
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
});

describe('scripts/lib/compose.ts', () => {
  test('maps the Compose file to native services with host names pointed at 127.0.0.1', () => {
    const local = loadCompose(composePath, { env: nativeVariables(root, {}) });
    const native = startOrder(nativeServices(local));
    assert.deepEqual(
      native.map((s) => [s.name, s.service, s.port, s.oneShot, s.args.join(' ')]),
      [
        ['counter', 'counter', 3001, false, 'src/main.ts'],
        ['jokes-migrate', 'jokes', undefined, true, 'src/migrate.ts'],
        ['jokes', 'jokes', 3002, false, 'src/main.ts'],
        ['images-migrate', 'images', undefined, true, 'src/migrate.ts'],
        ['images', 'images', 3003, false, '--max-semi-space-size=4 src/main.ts'],
        ['gateway', 'gateway', 5000, false, 'src/main.ts'],
      ],
    );
    const byName = Object.fromEntries(native.map((s) => [s.name, s]));
    assert.equal(byName.counter?.env.REDIS_URL, 'redis://127.0.0.1:6379');
    assert.equal(byName.gateway?.env.COUNTER_URL, 'http://127.0.0.1:3001');
    assert.equal(byName.gateway?.env.JOKES_URL, 'http://127.0.0.1:3002');
    assert.equal(byName.gateway?.env.IMAGES_URL, 'http://127.0.0.1:3003');
    assert.deepEqual(byName.gateway?.dependsOn, ['counter', 'jokes', 'images', 'gateway-secret']);
    assert.deepEqual(byName.jokes?.conditions, { 'jokes-migrate': 'service_completed_successfully' });
    // natively the local superuser, trusted on loopback, and no container secret file
    assert.equal(byName.jokes?.env.DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/ms3_jokes');
    assert.equal(byName.jokes?.env.DATABASE_PASSWORD_FILE, undefined);
    // a named volume becomes a folder of the checkout
    assert.equal(byName.images?.env.IMAGES_DIR, join(root, '.data', 'images-data'));
    assert.deepEqual(
      infraEndpoints(local).map((e) => [e.name, e.port]),
      [
        ['redis', 6379],
        ['db', 5432],
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
