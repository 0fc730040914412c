// The one-shot migrate step: runs every service's own migrate command (services/<name>/src/migrate.ts),
// all at once since each has its own database, and exits 0 only when all of them succeeded. Compose
// runs it before the services; `npm start` runs it natively; Kubernetes runs it as a Job.
// Each service takes part when <SERVICE>_DATABASE_URL is set, e.g. JOKES_DATABASE_URL.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migratableServices, migrationPlan, servicePrefix } from './lib/migrate.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const services = migratableServices(root, readdirSync(join(root, 'services')));
const say = (line: string) => process.stderr.write(`migrate: ${line}\n`);

const strays = Object.keys(process.env).filter(
  (key) => key.endsWith('_DATABASE_URL') && !services.some((s) => key === `${servicePrefix(s)}DATABASE_URL`),
);
if (strays.length > 0) {
  say(`${strays.join(', ')} names no service with migrations here (known: ${services.join(', ')})`);
  process.exit(78);
}
const plan = migrationPlan(process.env, services);
if (plan.length === 0) {
  say(`nothing to migrate: set <SERVICE>_DATABASE_URL for one of ${services.join(', ')}`);
  process.exit(78);
}

const children = new Set<ReturnType<typeof spawn>>();
// A stop of the step reaches the migrations, which end their transaction rather than being cut off.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    for (const child of children) child.kill(signal);
  });
}

const results = await Promise.all(
  plan.map(
    ({ service, env }) =>
      new Promise<number>((done) => {
        // Each service's lines already name it ("jokes migrate: ..."), so output passes straight through.
        const child = spawn(process.execPath, ['src/migrate.ts'], {
          cwd: join(root, 'services', service),
          env,
          stdio: ['ignore', 'inherit', 'inherit'],
        });
        children.add(child);
        child.on('error', (err) => {
          say(`${service} could not start: ${err.message}`);
          done(1);
        });
        child.on('exit', (code, signal) => done(signal ? 1 : (code ?? 1)));
      }),
  ),
);
const failed = plan.filter((_, i) => results[i] !== 0).map((m) => m.service);
if (failed.length > 0) {
  say(`failed: ${failed.join(', ')}`);
  process.exit(1);
}
say(`done: ${plan.map((m) => m.service).join(', ')}`);
