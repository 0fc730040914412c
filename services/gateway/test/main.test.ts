import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { closedPort } from './helpers.ts';

const root = new URL('../../../', import.meta.url).pathname;

/** The gateway as a process with exactly this environment (nothing inherited but PATH). */
function start(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['services/gateway/src/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', COUNTER_URL: '', JOKES_URL: '', IMAGES_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return { child, output: () => text };
}

async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = await once(child, 'exit');
  return code as number | null;
}

describe('gateway start-up', () => {
  test('in production it exits 78 naming API_TOKENS when no token is set', async () => {
    const { child, output } = start({ NODE_ENV: 'production', RATE_LIMIT_ENABLED: 'false' });
    assert.equal(await exitCode(child), 78);
    assert.match(output(), /API_TOKENS is required: set it to one or more tokens/);
  });

  test('it exits 78 naming API_TOKENS_FILE when that file is not there', async () => {
    const { child, output } = start({
      NODE_ENV: 'production',
      API_TOKENS_FILE: '/run/secrets/berth-gateway/not-there',
      RATE_LIMIT_ENABLED: 'false',
    });
    assert.equal(await exitCode(child), 78);
    assert.match(output(), /API_TOKENS_FILE "\/run\/secrets\/berth-gateway\/not-there" cannot be read/);
  });

  test('it exits 78 naming the variable for a bad proxy list, origin list or timeout pair', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ TRUSTED_PROXIES: '10.0.0.0/8, proxy.local' }, /TRUSTED_PROXIES has "proxy.local"/],
      [{ CORS_ORIGINS: 'https://app.example.com/path' }, /CORS_ORIGINS has "https:\/\/app.example.com\/path"/],
      [{ IDLE_TIMEOUT_MS: '1000', UPSTREAM_TIMEOUT_MS: '5000' }, /IDLE_TIMEOUT_MS \(1000\) must be larger than/],
      [{ RATE_LIMIT_MAX: 'lots' }, /RATE_LIMIT_MAX must be integer \(got "lots"\)/],
    ];
    for (const [env, message] of cases) {
      const { child, output } = start({ API_TOKENS: 'a'.repeat(32), RATE_LIMIT_ENABLED: 'false', ...env });
      assert.equal(await exitCode(child), 78, JSON.stringify(env));
      assert.match(output(), message);
    }
  });

  test('it warns at start when TRUSTED_PROXIES trusts a range, not when it lists single addresses', async () => {
    for (const [proxies, warned] of [
      ['10.0.0.0/8', true],
      ['uniquelocal', true],
      ['10.1.2.3, 10.1.2.4/32, ::1', false],
    ] as const) {
      const port = await closedPort();
      const { child, output } = start({
        PORT: String(port),
        API_TOKENS: 'a'.repeat(32),
        RATE_LIMIT_ENABLED: 'false',
        TRUSTED_PROXIES: proxies,
      });
      try {
        const deadline = Date.now() + 10_000;
        while (!output().includes('Server listening') && Date.now() < deadline && child.exitCode === null) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.match(output(), /Server listening/);
        const warning = /TRUSTED_PROXIES trusts the ranges .+: any host in them can set X-Forwarded-For/;
        assert.equal(warning.test(output()), warned, `${proxies}: ${output()}`);
      } finally {
        child.kill('SIGTERM');
        assert.equal(await exitCode(child), 0);
      }
    }
  });

  test('outside production it starts with a token for this run, printed once, that writes need', async () => {
    const port = await closedPort();
    const { child, output } = start({ PORT: String(port), RATE_LIMIT_ENABLED: 'false' });
    try {
      const deadline = Date.now() + 10_000;
      let token: string | undefined;
      while (!token && Date.now() < deadline && child.exitCode === null) {
        token = /take this token until it stops: ([0-9a-f]{64})/.exec(output())?.[1];
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(token, `no token in the log:\n${output()}`);
      let ready = false;
      while (!ready && Date.now() < deadline) {
        ready = (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok === true;
        if (!ready) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const without = await fetch(`http://127.0.0.1:${port}/jokes`, { method: 'POST' });
      assert.equal(without.status, 401);
      // past the token check: the jokes service is not deployed in this test
      const withToken = await fetch(`http://127.0.0.1:${port}/jokes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(withToken.status, 503);
      assert.equal(output().split(token).length - 1, 1, 'the token is printed exactly once');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exitCode(child), 0);
    }
  });
});
