// Running docker and docker compose from the container test: output captured and shown when a
// command fails, every command bounded in time, the phases timed.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** What a command printed and how it ended. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command in the repository root; rejects (with its output) on a non-zero exit unless `allowFailure`. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: Buffer; timeoutMs?: number; allowFailure?: boolean } = {},
): Promise<Run> {
  const { env = process.env, input, timeoutMs = 300_000, allowFailure = false } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, timeout: timeoutMs, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const result = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (code === 0 || allowFailure) return resolve(result);
      const tail = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-40).join('\n');
      reject(new Error(`${command} ${args.join(' ')} ended with ${code ?? signal}:\n${tail}`));
    });
    child.stdin.end(input);
  });
}

/** `docker compose` for one project, with the given environment on top of this process's. */
export function composer(project: string, env: Record<string, string>, files: string[] = []) {
  const fullEnv = { ...process.env, ...env, COMPOSE_PROJECT_NAME: project };
  const fileArgs = files.flatMap((file) => ['-f', file]);
  return {
    env: fullEnv,
    compose: (args: string[], options: { timeoutMs?: number; allowFailure?: boolean; input?: Buffer } = {}) =>
      run('docker', ['compose', ...fileArgs, ...args], { ...options, env: fullEnv }),
  };
}

/** The volumes (named and anonymous) mounted by the project's containers, running or not. */
export async function volumesOf(project: string): Promise<string[]> {
  const filter = `label=com.docker.compose.project=${project}`;
  const ids = (await run('docker', ['ps', '-a', '-q', '--filter', filter])).stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  const format = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}';
  const { stdout } = await run('docker', ['inspect', '-f', format, ...ids]);
  return [...new Set(stdout.split(/\s+/).filter(Boolean))];
}

/**
 * The project's containers, networks and volumes that still exist: by Compose's project label, and
 * the given volumes by name (anonymous volumes carry no project label).
 */
export async function leftovers(project: string, volumes: string[] = []): Promise<string[]> {
  const filter = `label=com.docker.compose.project=${project}`;
  const found: string[] = [];
  const existing = new Set((await run('docker', ['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean));
  for (const volume of volumes) if (existing.has(volume)) found.push(`volume ${volume}`);
  for (const [kind, args] of [
    ['container', ['ps', '-a', '--filter', filter, '--format', '{{.Names}}']],
    ['network', ['network', 'ls', '--filter', filter, '--format', '{{.Name}}']],
    ['volume', ['volume', 'ls', '--filter', filter, '--format', '{{.Name}}']],
  ] as const) {
    const { stdout } = await run('docker', [...args]);
    for (const name of stdout.split('\n').filter(Boolean)) found.push(`${kind} ${name}`);
  }
  return found;
}

/** Removes the images Compose built for the project (the build cache stays, so the next build is quick). */
export async function removeImages(project: string): Promise<void> {
  const filter = `label=com.docker.compose.project=${project}`;
  const ids = (await run('docker', ['image', 'ls', '--filter', filter, '-q'])).stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await run('docker', ['image', 'rm', '-f', ...new Set(ids)]);
}

/** `docker inspect -f <format>` of one container, trimmed. */
export async function inspect(container: string, format: string): Promise<string> {
  return (await run('docker', ['inspect', '-f', format, container])).stdout.trim();
}

/** Calls probe every `everyMs` until it returns a value other than undefined; throws after timeoutMs. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} did not happen within ${timeoutMs / 1000} s${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Times named phases, printing each as it ends, and keeps them for the summary. */
export class Phases {
  readonly done: Array<{ phase: string; seconds: number }> = [];

  async time<T>(phase: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    process.stdout.write(`# phase ${phase} ...\n`);
    const result = await work();
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    this.done.push({ phase, seconds });
    process.stdout.write(`# phase ${phase}: ${seconds.toFixed(1)} s\n`);
    return result;
  }

  /** Records a figure measured inside a phase (e.g. a restart), printed at once. */
  note(phase: string, seconds: number): void {
    const rounded = Math.round(seconds * 10) / 10;
    this.done.push({ phase, seconds: rounded });
    process.stdout.write(`# ${phase}: ${rounded.toFixed(1)} s\n`);
  }
}
