import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Type } from 'typebox';
import { baseEnv, ConfigError, loadConfig, urlEnv } from '../src/index.ts';

const Env = Type.Object({
  ...baseEnv(3001),
  REDIS_URL: urlEnv(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 10000, default: 1000 }),
  VERBOSE: Type.Boolean({ default: false }),
  API_KEY: Type.String({ minLength: 1 }),
});

const fixture = fileURLToPath(new URL('./fixtures/load-config.ts', import.meta.url));

/** Runs the fixture with only the given variables (and PATH) in its environment. */
function runFixture(env: Record<string, string>) {
  return spawnSync(process.execPath, [fixture], {
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
    timeout: 10_000,
  });
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected loadConfig to throw');
}

describe('loadConfig', () => {
  test('coerces strings to the schema types and applies defaults', () => {
    const config = loadConfig(Env, { PORT: '8080', TIMEOUT_MS: '250', VERBOSE: 'true', API_KEY: 'k' });
    assert.deepEqual(config, {
      PORT: 8080,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      REDIS_URL: 'redis://127.0.0.1:6379',
      TIMEOUT_MS: 250,
      VERBOSE: true,
      API_KEY: 'k',
    });
  });

  test('leaves out variables the schema does not name', () => {
    const config = loadConfig(Env, { API_KEY: 'k', SOMETHING_ELSE: 'x' });
    assert.equal('SOMETHING_ELSE' in config, false);
  });

  test('reads only the environment it is given', () => {
    const saved = process.env.TIMEOUT_MS;
    process.env.TIMEOUT_MS = 'not a number';
    try {
      assert.equal(loadConfig(Env, { API_KEY: 'k' }).TIMEOUT_MS, 1000);
    } finally {
      if (saved === undefined) delete process.env.TIMEOUT_MS;
      else process.env.TIMEOUT_MS = saved;
    }
  });

  test('a value of the wrong type throws a ConfigError naming the variable and quoting the value', () => {
    const err = configError(() => loadConfig(Env, { PORT: 'abc', API_KEY: 'k' }));
    assert.match(err.message, /PORT/);
    assert.match(err.message, /"abc"/);
  });

  test('a number out of range names the variable and the value', () => {
    const err = configError(() => loadConfig(Env, { PORT: '70000', API_KEY: 'k' }));
    assert.match(err.message, /PORT must be <= 65535 \(got "70000"\)/);
  });

  test('a value outside an enum names the variable', () => {
    const err = configError(() => loadConfig(Env, { LOG_LEVEL: 'loud', API_KEY: 'k' }));
    assert.match(err.message, /LOG_LEVEL .*\(got "loud"\)/);
  });

  test('a URL of the wrong scheme names the variable and the value', () => {
    const err = configError(() => loadConfig(Env, { REDIS_URL: 'http://cache:6379', API_KEY: 'k' }));
    assert.match(err.message, /REDIS_URL .*\(got "http:\/\/cache:6379"\)/);
  });

  test('a missing required variable is named as required', () => {
    const err = configError(() => loadConfig(Env, {}));
    assert.match(err.message, /API_KEY is required/);
  });

  test('every offending variable is named at once', () => {
    const err = configError(() => loadConfig(Env, { PORT: 'abc', TIMEOUT_MS: '5', API_KEY: 'k' }));
    assert.match(err.message, /PORT/);
    assert.match(err.message, /TIMEOUT_MS .*\(got "5"\)/);
  });

  test('urlEnv accepts a URL of one of its schemes', () => {
    const config = loadConfig(Env, { REDIS_URL: 'rediss://user:secret@cache.internal:6380/2', API_KEY: 'k' });
    assert.equal(config.REDIS_URL, 'rediss://user:secret@cache.internal:6380/2');
  });
});

describe('loadConfigOrExit', () => {
  test('a bad value exits with status 78 and the message on stderr', () => {
    const child = runFixture({ PORT: 'abc' });
    assert.equal(child.status, 78);
    assert.match(child.stderr, /PORT/);
    assert.match(child.stderr, /"abc"/);
    assert.equal(child.stdout, '');
  });

  test('a bad URL exits with status 78 naming the variable', () => {
    const child = runFixture({ UPSTREAM_URL: 'ftp://files' });
    assert.equal(child.status, 78);
    assert.match(child.stderr, /UPSTREAM_URL .*"ftp:\/\/files"/);
  });

  test('a valid environment returns the config and the process carries on', () => {
    const child = runFixture({ PORT: '4000', LOG_LEVEL: 'warn' });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), {
      PORT: 4000,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'warn',
      UPSTREAM_URL: 'http://127.0.0.1:3001',
    });
  });
});
