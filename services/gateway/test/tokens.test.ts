import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '@berth/service-kit';
import { GatewayEnv } from '../src/config.ts';
import { parseTokens, resolveTokens, TokenChecker } from '../src/tokens.ts';

const config = (env: Record<string, string>) => loadConfig(GatewayEnv, env);
const A = 'a'.repeat(32);
const B = 'b0b0b0b0-b0b0-b0b0.b0b0~b0b0';

describe('API tokens', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gateway-tokens-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('API_TOKENS takes a comma-separated list, spaces allowed', () => {
    const source = resolveTokens(config({ API_TOKENS: ` ${A}, ${B} ` }));
    assert.deepEqual(source, { tokens: [A, B], from: 'API_TOKENS' });
  });

  test('API_TOKENS_FILE is read when API_TOKENS is not set, one token a line or separated by commas', async () => {
    const file = join(dir, 'api-tokens');
    await writeFile(file, `${A}\n${B}\n`);
    assert.deepEqual(resolveTokens(config({ API_TOKENS_FILE: file })), { tokens: [A, B], from: 'API_TOKENS_FILE' });
    assert.deepEqual(resolveTokens(config({ API_TOKENS: B, API_TOKENS_FILE: file })).tokens, [B], 'API_TOKENS wins');
  });

  test('a missing or empty API_TOKENS_FILE is a configuration error naming the variable and the path', async () => {
    const missing = join(dir, 'nothing-here');
    assert.throws(
      () => resolveTokens(config({ API_TOKENS_FILE: missing })),
      (err: Error) => err instanceof ConfigError && err.message.includes(`API_TOKENS_FILE "${missing}" cannot be read`),
    );
    const empty = join(dir, 'empty');
    await writeFile(empty, '\n');
    assert.throws(() => resolveTokens(config({ API_TOKENS_FILE: empty })), /API_TOKENS_FILE ".*empty" holds no token/);
  });

  test('in production no token at all is a configuration error that says how to make one', () => {
    assert.throws(
      () => resolveTokens(config({ NODE_ENV: 'production' })),
      (err: Error) =>
        err instanceof ConfigError && /^API_TOKENS is required/.test(err.message) && /openssl rand/.test(err.message),
    );
  });

  test('outside production a missing token becomes a random one for this run', () => {
    const first = resolveTokens(config({}));
    const second = resolveTokens(config({}));
    assert.equal(first.from, 'generated');
    assert.match(first.tokens[0] as string, /^[0-9a-f]{64}$/);
    assert.notEqual(first.tokens[0], second.tokens[0]);
  });

  test('tokens too short or with characters a Bearer header cannot carry are refused', () => {
    assert.throws(
      () => parseTokens('short', 'API_TOKENS'),
      /API_TOKENS holds a token of 5 characters; use at least 16/,
    );
    assert.throws(() => parseTokens(`${A};drop`, 'API_TOKENS'), /API_TOKENS holds a token with characters/);
    assert.deepEqual(parseTokens('', 'API_TOKENS'), []);
  });

  test('the checker accepts exactly the configured tokens, whatever the length of a guess', () => {
    const checker = new TokenChecker([A, B]);
    assert.equal(checker.accepts(A), true);
    assert.equal(checker.accepts(B), true);
    for (const guess of ['', 'a', A.slice(0, -1), `${A}a`, A.toUpperCase(), 'x'.repeat(10_000)]) {
      assert.equal(checker.accepts(guess), false, `accepted ${guess.slice(0, 40)}`);
    }
    assert.throws(() => new TokenChecker([]));
  });
});
