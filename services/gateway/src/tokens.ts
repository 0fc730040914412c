import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '@berth/service-kit';
import type { GatewayConfig } from './config.ts';

/** What may follow "Bearer " (RFC 6750 b64token). */
const TOKEN_SYNTAX = /^[A-Za-z0-9\-._~+/]+=*$/;
const MIN_LENGTH = 16;
const HOW_TO_MAKE = 'make one with: openssl rand -hex 32';

/** The tokens writes are checked against and where they came from. */
export interface TokenSource {
  tokens: string[];
  /** 'generated': none was configured outside production, so one was made for this run. */
  from: 'API_TOKENS' | 'API_TOKENS_FILE' | 'generated';
}

/** What a token may do. Each implies the ones after it: admin (/metrics when it needs a token), write, read. */
export type Scope = 'admin' | 'write' | 'read';
const SCOPES: Scope[] = ['admin', 'write', 'read'];

/** A token with what it may do: `read:<token>`, `read+write:<token>`; a bare token may do everything. */
export interface ScopedToken {
  token: string;
  scopes: Set<Scope>;
}

/** Reads one API_TOKENS entry: `[scope[+scope]:]token`. */
export function scopedToken(entry: string, where: string): ScopedToken {
  const colon = entry.indexOf(':');
  if (colon < 0) return { token: entry, scopes: new Set(SCOPES) };
  const scopes = new Set<Scope>();
  for (const name of entry.slice(0, colon).split('+')) {
    const at = SCOPES.indexOf(name as Scope);
    if (at < 0) {
      throw new ConfigError(
        `${where} gives a token the scope "${name.slice(0, 20)}"; scopes are ${SCOPES.join(', ')}, written as read+write:<token>`,
      );
    }
    for (const implied of SCOPES.slice(at)) scopes.add(implied);
  }
  return { token: entry.slice(colon + 1), scopes };
}

/**
 * Splits a token list (commas, spaces or new lines) and refuses tokens too short or not sendable as
 * Bearer; each entry may start with its scopes (`read:<token>`).
 */
export function parseTokens(text: string, where: string): string[] {
  const entries = text.split(/[\s,]+/).filter(Boolean);
  for (const entry of entries) {
    const { token } = scopedToken(entry, where);
    if (!TOKEN_SYNTAX.test(token)) {
      throw new ConfigError(
        `${where} holds a token with characters a Bearer token cannot carry; use letters, digits and -._~+/ (${HOW_TO_MAKE})`,
      );
    }
    if (token.length < MIN_LENGTH) {
      throw new ConfigError(
        `${where} holds a token of ${token.length} characters; use at least ${MIN_LENGTH} (${HOW_TO_MAKE})`,
      );
    }
  }
  return entries;
}

function readTokenFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message;
    throw new ConfigError(`API_TOKENS_FILE "${file}" cannot be read (${code}); mount the file there or set API_TOKENS`);
  }
  const tokens = parseTokens(text, `API_TOKENS_FILE "${file}"`);
  if (tokens.length === 0) {
    throw new ConfigError(
      `API_TOKENS_FILE "${file}" holds no token; write one there (${HOW_TO_MAKE}) or set API_TOKENS`,
    );
  }
  return tokens;
}

/**
 * The tokens for writes: API_TOKENS when set, else the file API_TOKENS_FILE names. Outside production
 * (native runs) a missing setting gets a random token for this run, so a fresh checkout starts; in
 * production it is a configuration error, and the gateway does not start.
 */
export function resolveTokens(config: GatewayConfig): TokenSource {
  if (config.API_TOKENS.trim() !== '')
    return { tokens: parseTokens(config.API_TOKENS, 'API_TOKENS'), from: 'API_TOKENS' };
  if (config.API_TOKENS_FILE !== '') return { tokens: readTokenFile(config.API_TOKENS_FILE), from: 'API_TOKENS_FILE' };
  if (config.NODE_ENV !== 'production') return { tokens: [randomBytes(32).toString('hex')], from: 'generated' };
  throw new ConfigError(
    `API_TOKENS is required: set it to one or more tokens separated by commas (${HOW_TO_MAKE}), or set API_TOKENS_FILE to a file that holds them`,
  );
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Checks presented tokens against the configured ones without leaking, by timing, how close a guess was. */
export class TokenChecker {
  readonly #known: Array<{ digest: Buffer; scopes: Set<Scope> }>;

  /** The configured entries, each `token` or `scopes:token` (see scopedToken). */
  constructor(entries: string[]) {
    if (entries.length === 0) throw new Error('TokenChecker needs at least one token');
    this.#known = entries.map((entry) => {
      const { token, scopes } = scopedToken(entry, 'API_TOKENS');
      return { digest: digest(token), scopes };
    });
  }

  /** True when the token is one of the configured ones. */
  accepts(token: string): boolean {
    return this.scopes(token) !== undefined;
  }

  /**
   * What the token may do, or undefined when it is not a configured one. Digests have a fixed
   * length, so neither the content nor the length of the guess shows in the time taken; every
   * configured token is compared.
   */
  scopes(token: string): Set<Scope> | undefined {
    const given = digest(token);
    let match: Set<Scope> | undefined;
    for (const known of this.#known) {
      if (timingSafeEqual(given, known.digest)) match = known.scopes;
    }
    return match;
  }
}
