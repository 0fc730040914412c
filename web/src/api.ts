import { getReadToken, getToken } from './settings.ts';

/** What went wrong with a call, in words a person can act on. */
export class ApiError extends Error {
  /** HTTP status, or 0 when the gateway could not be reached at all. */
  readonly status: number;
  /** The API's error code (e.g. SERVICE_UNAVAILABLE), when it sent one. */
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** True when a service (or the gateway itself) is down rather than the request being wrong. */
  get down(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }

  /** True when a write was refused for its token. */
  get unauthorized(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

/** Options of one call: a JSON body or a FormData, and whether it is a write that needs the token. */
export interface CallOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  json?: unknown;
  form?: FormData;
  signal?: AbortSignal;
}

/** The API's error body, `{ statusCode, code, error, message }`. */
interface ErrorBody {
  code?: string;
  message?: string;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let body: ErrorBody = {};
  try {
    body = (await res.json()) as ErrorBody;
  } catch {
    // not JSON: a proxy in between, or an empty answer
  }
  let message = body.message ?? `${res.status} ${res.statusText}`;
  if (res.status === 401) message = `${message}. Set the API token in Settings`;
  if (res.status === 403) message = `${message}. Check the API tokens in Settings`;
  return new ApiError(res.status, body.code ?? '', message);
}

/** Calls the API on this origin; resolves with the status and JSON body (undefined for 204), rejects with an ApiError. */
export async function call<T>(path: string, options: CallOptions = {}): Promise<{ status: number; body: T }> {
  const method = options.method ?? (options.json !== undefined || options.form ? 'POST' : 'GET');
  const headers: Record<string, string> = { accept: 'application/json' };
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }
  // writes carry the write token; reads the read token, when the gateway asks for one
  const token = method === 'GET' ? getReadToken() : getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, signal: options.signal });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'The gateway cannot be reached; check that berth is running');
  }
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return { status: res.status, body: undefined as T };
  return { status: res.status, body: (await res.json()) as T };
}

/** Calls the API and resolves with the JSON body alone. */
export async function api<T>(path: string, options: CallOptions = {}): Promise<T> {
  return (await call<T>(path, options)).body;
}

/** Builds a query string from the values that are set. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** True for an aborted fetch, which is not an error to show. */
export function aborted(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}
