import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** One service's migrations: where its migrate command lives and the environment it runs with. */
export interface Migration {
  /** Directory under services/. */
  service: string;
  /** Variables for that service's src/migrate.ts: <SERVICE>_X from the step's environment as X, shared ones as they are. */
  env: Record<string, string>;
}

/** The prefix that addresses one service's variables in the migrate step: images -> IMAGES_. */
export function servicePrefix(service: string): string {
  return `${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
}

/**
 * Splits the migrate step's environment into one environment per service. A service takes part
 * when `<SERVICE>_DATABASE_URL` is set; its `<SERVICE>_*` variables reach it without the prefix,
 * every variable that starts with no taking part service's prefix reaches all of them unchanged
 * (LOG_LEVEL, DATABASE_PASSWORD_FILE, MIGRATE_WAIT_MS). Order follows `services`.
 */
export function migrationPlan(env: Record<string, string | undefined>, services: readonly string[]): Migration[] {
  const taking = services.filter((s) => env[`${servicePrefix(s)}DATABASE_URL`] !== undefined);
  const prefixes = taking.map(servicePrefix);
  const shared: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && !prefixes.some((p) => key.startsWith(p))) shared[key] = value;
  }
  return taking.map((service) => {
    const own: Record<string, string> = {};
    const prefix = servicePrefix(service);
    for (const [key, value] of Object.entries(env)) {
      if (value !== undefined && key.startsWith(prefix)) own[key.slice(prefix.length)] = value;
    }
    return { service, env: { ...shared, ...own } };
  });
}

/** Services under `root`/services that have a migrate command (src/migrate.ts), in name order. */
export function migratableServices(root: string, candidates: readonly string[]): string[] {
  return candidates.filter((s) => existsSync(join(root, 'services', s, 'src', 'migrate.ts'))).sort();
}
