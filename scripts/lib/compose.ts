import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseEnv } from 'node:util';
import { parse } from 'yaml';
import { interpolateTree, type Variables } from './interpolate.ts';

/** The parts of a Compose healthcheck berth uses. */
export interface ComposeHealthcheck {
  test?: string | string[];
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
  start_interval?: string;
  disable?: boolean;
}

/** The parts of a Compose build section berth uses. */
export interface ComposeBuild {
  context?: string;
  dockerfile?: string;
  target?: string;
  args?: Record<string, string | number | null> | string[];
}

/** A published port in short ("5000:5000") or long ({ target, published }) syntax. */
export type ComposePort = string | number | { target: number; published?: string | number; host_ip?: string };

/** One service of a Compose file, as far as berth reads it. */
export interface ComposeService {
  image?: string;
  build?: string | ComposeBuild;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: ComposePort[];
  depends_on?: string[] | Record<string, { condition?: string; required?: boolean; restart?: boolean }>;
  healthcheck?: ComposeHealthcheck;
  [key: string]: unknown;
}

/** A parsed Compose file. */
export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  [key: string]: unknown;
}

/** A Compose service that `npm start` runs as a local Node process. */
export interface NativeService {
  /** Compose service name, used as the log prefix. */
  name: string;
  /** Directory under services/ (the Dockerfile's SERVICE build argument); undefined for a repository-wide step. */
  service: string | undefined;
  /** Where it runs, relative to the repository root: the image's WORKDIR (services/<service>, or the root). */
  cwd: string;
  /** Environment from Compose, with Compose host names pointed at 127.0.0.1. */
  env: Record<string, string>;
  /** Compose services this one waits for. */
  dependsOn: string[];
  /** What each dependency must reach first: service_healthy or service_completed_successfully. */
  conditions: Record<string, string>;
  /** Port the service listens on, when known. */
  port: number | undefined;
  /** Arguments after `node`, run in `cwd`; `src/main.ts` unless Compose says. */
  args: string[];
  /** A step that runs to completion (a migration), not a server: Compose's `restart: "no"` with a command. */
  oneShot: boolean;
}

/** An infrastructure service (no build) that native runs expect at 127.0.0.1. */
export interface InfraEndpoint {
  name: string;
  port: number;
  /** The native services whose environment points at it. */
  usedBy: string[];
}

/** Options for loadCompose. */
export interface LoadOptions {
  /** Variables for `${VAR}` interpolation; by default the process environment over the file's .env. */
  env?: Variables;
  /** Set to false to read the file as written, references and all. */
  interpolate?: boolean;
}

// Default ports of URL schemes that appear in berth's wiring, for URLs written without a port.
const SCHEME_PORTS: Record<string, number> = {
  http: 80,
  https: 443,
  redis: 6379,
  rediss: 6379,
  postgres: 5432,
  postgresql: 5432,
  nats: 4222,
};

// scheme://[userinfo@]host[:port]...; the host is group 2.
const URL_AUTHORITY = /^([a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?)([^:/?#[\]]+)(:(\d+))?/i;

/** The variables Compose would interpolate with: the process environment over the project's .env file. */
export function composeVariables(projectDir: string, env: NodeJS.ProcessEnv = process.env): Variables {
  const dotenvPath = join(projectDir, '.env');
  const fromFile = existsSync(dotenvPath) ? parseEnv(readFileSync(dotenvPath, 'utf8')) : {};
  return { ...fromFile, ...env };
}

/**
 * What native runs interpolate with: the local PostgreSQL's superuser where Compose would create
 * its own user (unless .env or the environment names one), then the usual variables.
 */
export function nativeVariables(projectDir: string, env: NodeJS.ProcessEnv = process.env): Variables {
  return { POSTGRES_USER: 'postgres', ...composeVariables(projectDir, env) };
}

/** Secret files Compose mounts into containers; natively there are none (local servers trust loopback). */
const CONTAINER_SECRET = /^\/run\/secrets\//;

/** Where named volumes live natively: a folder each under .data/ in the checkout (git ignores it). */
export const NATIVE_VOLUMES = join(dirname(dirname(import.meta.dirname)), '.data');

/** A service's named-volume mounts, container path to volume name ("images-data:/data/images"). */
function volumeTargets(service: ComposeService): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of (service.volumes as unknown[] | undefined) ?? []) {
    if (typeof entry !== 'string') continue;
    const [source, target] = entry.split(':');
    if (source && target && /^[a-z0-9][a-z0-9_.-]*$/i.test(source)) out.set(target, source);
  }
  return out;
}

/** Reads and interpolates a Compose file; YAML merge keys (`<<: *anchor`) are honoured as Compose does. */
export function loadCompose(path: string, options: LoadOptions = {}): ComposeFile {
  const raw = parse(readFileSync(path, 'utf8'), { merge: true }) as ComposeFile | null;
  if (!raw || typeof raw !== 'object' || !raw.services) throw new Error(`Compose file "${path}" has no services`);
  if (options.interpolate === false) return raw;
  return interpolateTree(raw, options.env ?? composeVariables(dirname(path)));
}

/** A service's environment as a plain map; entries without a value are left out (they pass through). */
export function environmentOf(service: ComposeService): Record<string, string> {
  const env: Record<string, string> = {};
  const source = service.environment ?? {};
  if (Array.isArray(source)) {
    for (const entry of source) {
      const at = entry.indexOf('=');
      if (at > 0) env[entry.slice(0, at)] = entry.slice(at + 1);
    }
  } else {
    for (const [key, value] of Object.entries(source)) if (value !== null) env[key] = String(value);
  }
  return env;
}

/** A service's build arguments as a plain map. */
export function buildArgsOf(service: ComposeService): Record<string, string> {
  if (!service.build || typeof service.build === 'string') return {};
  const args = service.build.args ?? {};
  if (Array.isArray(args)) {
    return Object.fromEntries(
      args.filter((a) => a.includes('=')).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]),
    );
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(args)) if (value !== null) out[key] = String(value);
  return out;
}

/** A service's dependencies with their conditions; the short list form means `service_started`. */
export function dependenciesOf(service: ComposeService): Record<string, string> {
  const deps = service.depends_on ?? [];
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([name, spec]) => [name, spec?.condition ?? 'service_started']));
}

/** A service's published ports as { published, target } pairs (published is undefined when Docker picks it). */
export function publishedPorts(service: ComposeService): { published: number | undefined; target: number }[] {
  return (service.ports ?? []).map((port) => {
    if (typeof port === 'object') {
      return { published: port.published === undefined ? undefined : Number(port.published), target: port.target };
    }
    // [host_ip:][published:]target[/protocol]; IPv6 host addresses come in brackets.
    const parts = String(port)
      .replace(/\/\w+$/, '')
      .replace(/^\[[^\]]*\]:/, '')
      .split(':');
    const target = Number(parts.at(-1));
    const published = parts.length >= 2 ? Number(parts.at(-2)) : undefined;
    return { published: Number.isNaN(published) ? undefined : published, target };
  });
}

/** Host and port a URL value points at, or undefined if the value is not a URL. */
export function urlTarget(value: string): { scheme: string; host: string; port: number | undefined } | undefined {
  const match = URL_AUTHORITY.exec(value);
  if (!match) return undefined;
  const scheme = (match[1] ?? '').split(':')[0]?.toLowerCase() ?? '';
  const port = match[4] ? Number(match[4]) : SCHEME_PORTS[scheme];
  return { scheme, host: match[2] ?? '', port };
}

/**
 * Rewrites a URL whose host is one of `hosts` to point at 127.0.0.1, keeping everything else byte for
 * byte, except the port when `ports` moves that host elsewhere.
 */
export function localize(
  value: string,
  hosts: ReadonlySet<string>,
  ports: Readonly<Record<string, number>> = {},
): string {
  return value.replace(URL_AUTHORITY, (whole, prefix: string, host: string, port = '') => {
    if (!hosts.has(host)) return whole;
    const moved = ports[host];
    return `${prefix}127.0.0.1${moved === undefined ? port : `:${moved}`}`;
  });
}

/** The Dockerfile every berth image is built from. */
export const BERTH_DOCKERFILE = 'infra/Dockerfile';

/**
 * True for berth's own services: built from infra/Dockerfile, either one service (SERVICE build
 * argument, WORKDIR services/<SERVICE>) or a repository-wide target such as `migrate` (WORKDIR the root).
 */
export function isNodeService(service: ComposeService): boolean {
  if (buildArgsOf(service).SERVICE !== undefined) return true;
  return typeof service.build === 'object' && service.build.dockerfile === BERTH_DOCKERFILE;
}

function portFromHealthcheck(service: ComposeService): number | undefined {
  const test = service.healthcheck?.test;
  const text = Array.isArray(test) ? test.join(' ') : (test ?? '');
  const match = /https?:\/\/(?:127\.0\.0\.1|localhost)(?::(\d+))?\//.exec(text);
  return match?.[1] ? Number(match[1]) : undefined;
}

/** The arguments after `node` of a Compose command (exec form, or a plain string split on spaces). */
function nodeArgs(name: string, command: ComposeService['command']): string[] {
  if (command === undefined) return ['src/main.ts'];
  const argv = Array.isArray(command) ? command : command.split(/\s+/).filter(Boolean);
  if (argv[0] !== 'node') throw new Error(`Compose service "${name}": command must start with node, got "${argv[0]}"`);
  return argv.slice(1);
}

/** Where nativeServices puts things when not at the defaults. */
export interface NativeOptions {
  /** A local port per Compose service (Node or infrastructure) in place of its own: a private stack. */
  ports?: Readonly<Record<string, number>>;
  /** The folder that holds one folder per named volume; .data/ in the checkout by default. */
  volumesDir?: string;
}

/**
 * The Node services of a Compose file as local processes: every service built with a SERVICE build
 * argument, its environment taken from Compose with Compose host names mapped to 127.0.0.1 (each
 * service has its own port, so they do not clash on one host), container secret files left out and
 * paths where a named volume is mounted pointed at that volume's folder under .data/.
 * A published port in front of the
 * service's own port becomes its native port, so the stack answers at the same URL both ways.
 */
export function nativeServices(compose: ComposeFile, options: NativeOptions = {}): NativeService[] {
  const hosts = new Set(Object.keys(compose.services));
  const { ports = {}, volumesDir = NATIVE_VOLUMES } = options;
  const out: NativeService[] = [];
  for (const [name, service] of Object.entries(compose.services)) {
    if (!isNodeService(service)) continue;
    const dir = buildArgsOf(service).SERVICE;
    const env: Record<string, string> = {};
    const mounts = volumeTargets(service);
    for (const [key, value] of Object.entries(environmentOf(service))) {
      if (key.endsWith('_FILE') && CONTAINER_SECRET.test(value)) continue;
      const volume = mounts.get(value);
      env[key] = volume ? join(volumesDir, volume) : localize(value, hosts, ports);
    }
    let port = env.PORT ? Number(env.PORT) : portFromHealthcheck(service);
    const published = publishedPorts(service).find((p) => p.target === port)?.published;
    const moved = ports[name] ?? (published !== port ? published : undefined);
    if (moved !== undefined && port !== undefined) {
      port = moved;
      env.PORT = String(moved);
    }
    const conditions = dependenciesOf(service);
    const oneShot = service.restart === 'no' && service.command !== undefined;
    out.push({
      name,
      service: dir,
      cwd: dir === undefined ? '.' : join('services', dir),
      env,
      dependsOn: Object.keys(conditions),
      conditions,
      port: oneShot ? undefined : port,
      args: nodeArgs(name, service.command),
      oneShot,
    });
  }
  return out;
}

/** The infrastructure services the native services point at, with the local port each is expected on. */
export function infraEndpoints(compose: ComposeFile): InfraEndpoint[] {
  const found = new Map<string, InfraEndpoint>();
  for (const [name, service] of Object.entries(compose.services)) {
    if (isNodeService(service)) continue;
    for (const [user, userService] of Object.entries(compose.services)) {
      if (!isNodeService(userService)) continue;
      for (const value of Object.values(environmentOf(userService))) {
        const target = urlTarget(value);
        if (target?.host !== name || target.port === undefined) continue;
        const endpoint = found.get(name) ?? { name, port: target.port, usedBy: [] };
        if (!endpoint.usedBy.includes(user)) endpoint.usedBy.push(user);
        found.set(name, endpoint);
      }
    }
  }
  return [...found.values()];
}

/** Orders services so each comes after the native services it depends on; throws on a cycle. */
export function startOrder(services: NativeService[]): NativeService[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const ordered: NativeService[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (service: NativeService, path: string[]) => {
    const seen = state.get(service.name);
    if (seen === 'done') return;
    if (seen === 'visiting')
      throw new Error(`Services depend on each other in a cycle: ${[...path, service.name].join(' -> ')}`);
    state.set(service.name, 'visiting');
    for (const dep of service.dependsOn) {
      const next = byName.get(dep);
      if (next) visit(next, [...path, service.name]);
    }
    state.set(service.name, 'done');
    ordered.push(service);
  };
  for (const service of services) visit(service, []);
  return ordered;
}
