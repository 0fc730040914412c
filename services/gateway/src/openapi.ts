import { request } from 'undici';
import type { Upstream } from './config.ts';

/** An OpenAPI 3 document, as far as the merge needs to know it. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
  tags?: { name: string; description?: string }[];
  [extension: `x-${string}`]: unknown;
}

type Operation = {
  tags?: string[];
  security?: Record<string, string[]>[];
  responses?: Record<string, unknown>;
  [key: string]: unknown;
};

/** Where one service's document stands: fetched, kept from an earlier fetch, or never had. */
export interface ServiceEntry {
  name: string;
  status: 'included' | 'stale' | 'missing' | 'not deployed';
  document?: OpenApiDocument;
  error?: string;
  fetchedAt?: string;
}

/** How the catalog fetches and how often. */
export interface CatalogOptions {
  /** The gateway's own document (its health, metrics and document routes). */
  own: () => OpenApiDocument;
  timeoutMs: number;
  /** How often every document is fetched again; 0 only at start and while one is missing. */
  refreshMs: number;
  /** The least time between two fetches asked for by a request while a document is missing. */
  retryMissingMs?: number;
  onError?: (name: string, err: Error) => void;
}

const WRITES = new Set(['post', 'put', 'patch', 'delete']);
const METHODS = new Set(['get', 'head', 'options', ...WRITES]);
const ERROR_SCHEMA = { $ref: '#/components/schemas/GatewayError' };

/** The error body the gateway itself answers with, referenced by the responses it adds. */
const GATEWAY_ERROR = {
  type: 'object',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
  additionalProperties: true,
};

function errorResponse(description: string) {
  return { description, content: { 'application/json': { schema: ERROR_SCHEMA } } };
}

/**
 * The services' OpenAPI documents, fetched from each upstream's /<name>/openapi.json and merged
 * with the gateway's own into one. A service that cannot be reached keeps the document it gave
 * last; one never reached is left out and named in the merged document, and fetched again on the
 * next ask (at most every retryMissingMs) or refresh.
 */
export class OpenApiCatalog {
  readonly #upstreams: Upstream[];
  readonly #options: CatalogOptions;
  readonly #entries = new Map<string, ServiceEntry>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastAttempt = 0;
  #merged: OpenApiDocument | undefined;
  readonly #abort = new AbortController();

  constructor(upstreams: Upstream[], options: CatalogOptions) {
    this.#upstreams = upstreams;
    this.#options = options;
    for (const upstream of upstreams) {
      this.#entries.set(upstream.name, {
        name: upstream.name,
        status: upstream.url ? 'missing' : 'not deployed',
        error: upstream.url ? 'not fetched yet' : `${upstream.env} is empty`,
      });
    }
  }

  /** Fetches now and then every refreshMs. */
  start(): void {
    void this.refresh();
    if (this.#options.refreshMs > 0) {
      this.#timer = setInterval(() => void this.refresh(), this.#options.refreshMs);
      this.#timer.unref();
    }
  }

  /** Stops the refreshes and any fetch in flight. */
  stop(): void {
    clearInterval(this.#timer);
    this.#abort.abort();
  }

  /** Fetches every deployed service's document; one refresh at a time, callers share it. */
  refresh(): Promise<void> {
    this.#running ??= this.#fetchAll().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Refreshes first when a document is missing and the last try is old enough; otherwise at once. */
  async current(): Promise<OpenApiDocument> {
    if (this.#running) await this.#running;
    const missing = [...this.#entries.values()].some((e) => e.status === 'missing');
    if (missing && Date.now() - this.#lastAttempt >= (this.#options.retryMissingMs ?? 2000)) await this.refresh();
    return this.document();
  }

  /** The merged document from what is held now. */
  document(): OpenApiDocument {
    this.#merged ??= mergeDocuments(this.#options.own(), [...this.#entries.values()]);
    return this.#merged;
  }

  /** Each service's standing, for tests and logs. */
  entries(): ServiceEntry[] {
    return [...this.#entries.values()];
  }

  async #fetchAll(): Promise<void> {
    this.#lastAttempt = Date.now();
    await Promise.all(this.#upstreams.filter((u) => u.url).map((u) => this.#fetchOne(u)));
    this.#merged = undefined;
  }

  async #fetchOne(upstream: Upstream): Promise<void> {
    const { timeoutMs } = this.#options;
    const previous = this.#entries.get(upstream.name);
    try {
      const res = await request(`${upstream.url}/${upstream.name}/openapi.json`, {
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#abort.signal]),
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`answered ${res.statusCode}`);
      }
      const document = (await res.body.json()) as OpenApiDocument;
      if (typeof document?.paths !== 'object' || document.paths === null) throw new Error('answered without paths');
      this.#entries.set(upstream.name, {
        name: upstream.name,
        status: 'included',
        document,
        fetchedAt: new Date().toISOString(),
      });
    } catch (err) {
      const error = (err as Error).message;
      this.#options.onError?.(upstream.name, err as Error);
      this.#entries.set(
        upstream.name,
        previous?.document
          ? { ...previous, status: 'stale', error }
          : { name: upstream.name, status: 'missing', error },
      );
    }
  }
}

/** Replaces every "#/components/schemas/<old>" reference by its new name. */
function renameRefs(value: unknown, names: Map<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => renameRefs(v, names));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) {
      const name = v.slice('#/components/schemas/'.length);
      out[key] = `#/components/schemas/${names.get(name) ?? name}`;
    } else out[key] = renameRefs(v, names);
  }
  return out;
}

/**
 * One document from the gateway's own and the services': each operation tagged with the service
 * that serves it, writes marked as needing the bearer token (with the 401 and 403 the gateway
 * gives), shared schemas kept once and clashing ones renamed after their service. Services left
 * out are named in the description and, with every service's standing, in x-berth-services.
 */
export function mergeDocuments(own: OpenApiDocument, services: ServiceEntry[]): OpenApiDocument {
  const schemas: Record<string, unknown> = { GatewayError: GATEWAY_ERROR };
  const paths: OpenApiDocument['paths'] = {};
  const tags: { name: string; description?: string }[] = [];

  const add = (tag: string, doc: OpenApiDocument) => {
    const names = new Map<string, string>();
    for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) {
      const taken = schemas[name];
      if (taken === undefined || JSON.stringify(taken) === JSON.stringify(schema)) continue;
      names.set(name, `${tag}_${name}`);
    }
    const renamed = (names.size > 0 ? renameRefs(doc, names) : doc) as OpenApiDocument;
    for (const [name, schema] of Object.entries(renamed.components?.schemas ?? {})) {
      schemas[names.get(name) ?? name] = schema;
    }
    tags.push({ name: tag, description: doc.info?.description });
    for (const [path, item] of Object.entries(renamed.paths)) {
      const merged: Record<string, Operation> = { ...paths[path] };
      for (const [method, operation] of Object.entries(item)) {
        if (!METHODS.has(method)) {
          merged[method] = operation;
          continue;
        }
        const op: Operation = { ...operation, tags: [tag] };
        if (WRITES.has(method) && tag !== 'gateway') {
          op.security = [{ bearerAuth: [] }];
          op.responses = {
            ...op.responses,
            401: errorResponse('No bearer token: writes through the gateway need one'),
            403: errorResponse('The bearer token is not one of API_TOKENS'),
          };
        }
        if (tag !== 'gateway') op.responses = { 429: errorResponse('Over the per-client rate limit'), ...op.responses };
        merged[method] = op;
      }
      paths[path] = merged;
    }
  };

  add('gateway', own);
  const standing: Record<string, { status: string; error?: string; fetchedAt?: string }> = {};
  for (const entry of services) {
    standing[entry.name] = { status: entry.status, error: entry.error, fetchedAt: entry.fetchedAt };
    if (entry.document) add(entry.name, entry.document);
  }
  const missing = services.filter((e) => e.status === 'missing').map((e) => e.name);
  const base = 'berth behind one URL: the gateway’s own routes and every service’s, merged from their documents.';
  const description = missing.length
    ? `${base} Not included because they could not be reached: ${missing.join(', ')}.`
    : base;
  return {
    openapi: '3.0.3',
    info: { title: 'berth', version: own.info?.version ?? '0.1.0', description },
    tags,
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'One of the gateway’s API_TOKENS; needed for POST, PUT, PATCH and DELETE',
        },
      },
    },
    'x-berth-services': standing,
    'x-berth-missing': missing,
  };
}
