import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';
import type { Stack } from './stack.ts';

/** The repository root, so the benchmark runs the same way from any working directory. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Services the gateway can front, and the gateway variable that points at each. */
export const UPSTREAMS = { counter: 'COUNTER_URL', jokes: 'JOKES_URL', images: 'IMAGES_URL' } as const;

/** A service behind the gateway. */
export type UpstreamName = keyof typeof UPSTREAMS;

/** Base URLs of the started services, without a trailing slash. */
export type StackUrls = Partial<Record<UpstreamName | 'gateway', string>>;

/** What every service gets: its port, loopback only, and quiet logs so logging does not cost throughput. */
function baseEnv(port: number): Record<string, string> {
  return { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
}

/** Starts `node services/<name>/src/main.ts` on a free port with extra env and waits for its /readyz. */
export async function startService(stack: Stack, name: string, env: Record<string, string>): Promise<string> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  await stack.start({
    name,
    command: process.execPath,
    args: [`services/${name}/src/main.ts`],
    cwd: ROOT,
    env: { ...baseEnv(port), ...env },
    readyUrl: `${url}/readyz`,
  });
  return url;
}

/** Starts the gateway in front of the given services; the others are left out (their URL empty). */
export async function startGateway(stack: Stack, urls: StackUrls, extra: Record<string, string> = {}): Promise<string> {
  const env: Record<string, string> = { ...extra };
  for (const [name, variable] of Object.entries(UPSTREAMS)) env[variable] = urls[name as UpstreamName] ?? '';
  return startService(stack, 'gateway', env);
}
