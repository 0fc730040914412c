import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** An error raised on purpose: its status, code and message are meant for the caller, 5xx included. */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly expose = true;
  constructor(statusCode: number, code: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
  }
}

/** An error whose message tells the caller what was wrong and how to fix it. */
export function httpError(statusCode: number, code: string, message: string): HttpError {
  return new HttpError(statusCode, code, message);
}

/** A dependency (Redis, PostgreSQL, NATS) cannot be reached: a 503 that names it. */
export function dependencyUnavailable(name: string): HttpError {
  return new HttpError(503, 'DEPENDENCY_UNAVAILABLE', `${name} is unavailable right now; retry in a few seconds`);
}

interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
  /** Present because services compile schemas with Ajv's verbose option. */
  data?: unknown;
  parentSchema?: { description?: string };
}

/** How much of a value a message quotes. */
const QUOTE_CHARS = 80;

/**
 * Strings in quotes, anything else as JSON, so "2" and 2 read differently in a message; at most
 * about QUOTE_CHARS characters and a few levels deep, so a huge or deeply nested value costs
 * little and is not echoed whole.
 */
function quote(value: unknown): string {
  if (typeof value === 'string') return `"${value.length > QUOTE_CHARS ? `${value.slice(0, 77)}...` : value}"`;
  const text = brief(value, 0);
  return text.length > QUOTE_CHARS ? `${text.slice(0, 77)}...` : text;
}

/** A JSON-like preview of a parsed JSON value that stops once it is long or deep enough. */
function brief(value: unknown, depth: number): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > QUOTE_CHARS ? value.slice(0, QUOTE_CHARS) : value);
  if (value === null || typeof value !== 'object') return String(JSON.stringify(value));
  const array = Array.isArray(value);
  const [open, close] = array ? ['[', ']'] : ['{', '}'];
  if (depth >= 4) return `${open}...${close}`;
  const keys = array ? [] : Object.keys(value);
  const count = array ? value.length : keys.length;
  let text = open;
  for (let i = 0; i < count; i += 1) {
    if (text.length > QUOTE_CHARS) return `${text}...`;
    const item = array ? value[i] : (value as Record<string, unknown>)[keys[i] as string];
    const key = array ? '' : `${JSON.stringify(keys[i])}:`;
    text += `${i > 0 ? ',' : ''}${key}${brief(item, depth + 1)}`;
  }
  return text + close;
}

const WHERE: Record<string, string> = {
  body: 'Body field',
  querystring: 'Query parameter',
  params: 'Path parameter',
  headers: 'Header',
};

/** Turns an Ajv issue into one sentence that names the field and what it must be. */
export function describeValidation(context: string, issue: ValidationIssue): string {
  const where = WHERE[context] ?? context;
  const path = issue.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const field = (name: string) => (path ? `${path}.${name}` : name);
  switch (issue.keyword) {
    case 'required':
      return `${where} "${field(String(issue.params.missingProperty))}" is required`;
    case 'additionalProperties':
      return `${where} "${field(String(issue.params.additionalProperty))}" is not allowed; remove it`;
    case 'type':
      if (!path && context === 'body') return `Body must be a JSON ${issue.params.type}`;
      if (!issue.parentSchema?.description) return `${where} "${path}" must be ${article(String(issue.params.type))}`;
      return describeRule(where, path, issue);
    default:
      return describeRule(where, path, issue);
  }
}

/** "<where> "<field>" <rule> (got "<value>")", the rule taken from the schema's description when it has one. */
function describeRule(where: string, path: string, issue: ValidationIssue): string {
  const rule = issue.parentSchema?.description ?? issue.message ?? 'is not valid';
  if (!path) return `${where === WHERE.body ? 'Body' : where} ${rule}`;
  const got = issue.data === undefined ? '' : ` (got ${quote(issue.data)})`;
  return `${where} "${path}" ${rule}${got}`;
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function errorName(statusCode: number): string {
  return STATUS_CODES[statusCode] ?? 'Error';
}

/** True when the error, or one it was caused by, is a file system out of space (or over its quota). */
export function isNoSpace(err: unknown): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; depth += 1) {
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
    e = e.cause as typeof e;
  }
  return false;
}

/**
 * The shared error handler: 4xx keep their message (validation errors rewritten to name the field),
 * 5xx are logged in full and answered without internals unless they were raised on purpose.
 */
export function errorHandler(this: FastifyInstance, error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const statusCode = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
  if (error.validation) {
    const context = error.validationContext ?? 'body';
    const first = error.validation[0] as ValidationIssue | undefined;
    const message = first ? describeValidation(context, first) : error.message;
    return reply.code(400).send({ statusCode: 400, code: 'VALIDATION_ERROR', error: 'Bad Request', message });
  }
  if (isNoSpace(error)) {
    request.log.error({ err: error }, 'no space left on the storage; free some or add more');
    return reply.code(507).send({
      statusCode: 507,
      code: 'INSUFFICIENT_STORAGE',
      error: errorName(507),
      message: 'The service has no space left on its storage to keep this; retry once space has been freed',
    });
  }
  if (statusCode >= 500) {
    const deliberate = (error as { expose?: boolean }).expose === true;
    request.log[deliberate ? 'warn' : 'error']({ err: error }, 'request failed');
    if (statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', '1');
    return reply.code(statusCode).send({
      statusCode,
      code: deliberate ? error.code : 'INTERNAL_ERROR',
      error: errorName(statusCode),
      message: deliberate
        ? error.message
        : `Something went wrong on our side; quote request id ${request.id} when reporting it`,
    });
  }
  return reply.code(statusCode).send({
    statusCode,
    code: error.code ?? 'BAD_REQUEST',
    error: errorName(statusCode),
    message: error.message,
  });
}

/** 404 for unknown routes, in the shared shape. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  return reply.code(404).send({
    statusCode: 404,
    code: 'ROUTE_NOT_FOUND',
    error: 'Not Found',
    message: `Route ${request.method} ${request.url.split('?')[0]} does not exist`,
  });
}
