// The env schemas berth's processes validate their environment with, found the way each entry point
// loads them, so wiring files (docker-compose.yml, infra/k8s/) can be checked against the code.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '@berth/service-kit';
import type { TObject } from 'typebox';
import { migratableServices, migrationPlan } from '../../scripts/lib/migrate.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const capitalized = (word: string) => `${word[0]?.toUpperCase()}${word.slice(1)}`;

/** Services whose migrations scripts/migrate.ts runs. */
export const withMigrations = migratableServices(root, ['counter', 'gateway', 'images', 'jokes']);

const schemas = new Map<string, TObject>();
/**
 * A service's env schema: <Service>Env from src/config.ts for src/main.ts; for another script
 * <Script>Env from src/<script>-config.ts when that file exists, else from src/config.ts
 * (src/worker.ts: WorkerEnv in src/worker-config.ts; src/migrate.ts: MigrateEnv in src/config.ts).
 */
export async function configSchema(dir: string, script = 'src/main.ts'): Promise<TObject> {
  const key = `${dir}:${script}`;
  const cached = schemas.get(key);
  if (cached) return cached;
  const base = script === 'src/main.ts' ? dir : (script.split('/').pop()?.replace(/\.ts$/, '') ?? dir);
  const own = join(root, 'services', dir, 'src', `${base}-config.ts`);
  const file = existsSync(own) ? own : join(root, 'services', dir, 'src', 'config.ts');
  const shown = file.slice(root.length);
  assert.ok(existsSync(file), `${shown} does not exist, but "${dir}" is deployed`);
  const exportName = `${capitalized(base)}Env`;
  const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const schema = module[exportName] as TObject | undefined;
  assert.ok(schema?.properties, `${shown} must export the env schema of ${script} as "${exportName}"`);
  schemas.set(key, schema);
  return schema;
}

/** One process's environment and the schema it must pass. */
export interface ProcessEnvironment {
  label: string;
  env: Record<string, string>;
  schema: TObject;
}

/**
 * The environments a deployed process hands on, each with its schema: one for a service's script
 * (`dir` set), one per service for the repository-wide migrate step (scripts/migrate.ts gives
 * <SERVICE>_X to that service's src/migrate.ts as X).
 */
export async function processEnvironments(
  label: string,
  dir: string | undefined,
  script: string,
  env: Record<string, string>,
): Promise<ProcessEnvironment[]> {
  if (dir) return [{ label, env, schema: await configSchema(dir, script) }];
  assert.equal(script, 'scripts/migrate.ts', `${label}: a repository-wide step must run scripts/migrate.ts`);
  const plan = migrationPlan(env, withMigrations);
  assert.ok(plan.length > 0, `${label}: sets no <SERVICE>_DATABASE_URL`);
  return Promise.all(
    plan.map(async (m) => ({
      label: `${label} (${m.service})`,
      env: m.env,
      schema: await configSchema(m.service, 'src/migrate.ts'),
    })),
  );
}

/** Fails with every env name the schema does not know, then with what the schema rejects. */
export function assertEnvironmentFits({ label, env, schema }: ProcessEnvironment): void {
  const accepted = Object.keys(schema.properties);
  for (const key of Object.keys(env)) {
    assert.ok(accepted.includes(key), `${label}: ${key} is not in its config schema (${accepted.join(', ')})`);
  }
  assert.doesNotThrow(() => loadConfig(schema, env), `${label}: its environment does not validate`);
}
