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

/** Splits a token list (commas, spaces or new lines) and refuses tokens too short or not sendable as Bearer. */
export function parseTokens(text: string, where: string): string[] {
  const tokens = text.split(/[\s,]+/).filter(Boolean);
  for (const token of tokens) {
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
  return tokens;
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
  readonly #digests: Buffer[];

  constructor(tokens: string[]) {
    if (tokens.length === 0) throw new Error('TokenChecker needs at least one token');
    this.#digests = tokens.map(digest);
  }

  /**
   * True when the token is one of the configured ones. Digests have a fixed length, so neither the
   * content nor the length of the guess shows in the time taken; every configured token is compared.
   */
  accepts(token: string): boolean {
    const given = digest(token);
    let match = false;
    for (const known of this.#digests) {
      if (timingSafeEqual(given, known)) match = true;
    }
    return match;
  }
}
