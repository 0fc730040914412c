import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { authorized, echoUpstream, gateway, listen, rawGet } from './helpers.ts';

const run = promisify(execFile);

describe('gateway and Expect: 100-continue', () => {
  let upstream: FastifyInstance;
  let app: FastifyInstance;
  let base: string;
  let dir: string;

  before(async () => {
    upstream = echoUpstream();
    const upstreamUrl = await listen(upstream);
    app = gateway({ IMAGES_URL: upstreamUrl, COUNTER_URL: upstreamUrl });
    base = await listen(app);
    dir = await mkdtemp(join(tmpdir(), 'berth-expect-'));
  });

  after(async () => {
    await app.close();
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('forwards a curl -F upload over 1 MiB, which curl sends with Expect: 100-continue', async () => {
    const file = join(dir, 'train-images.bin');
    // hex text, so the echo's UTF-8 round trip keeps it byte for byte
    const content = randomBytes(800 * 1024).toString('hex');
    await writeFile(file, content);
    const { stdout, stderr } = await run(
      'curl',
      [
        '-sS',
        '-v',
        '-H',
        `authorization: ${authorized.authorization}`,
        '-F',
        `files=@${file}`,
        '-w',
        '\n%{http_code}',
        `${base}/images/imports`,
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    assert.match(stderr, /> Expect: 100-continue/i, 'curl asked to continue');
    const status = stdout.slice(stdout.lastIndexOf('\n') + 1);
    assert.equal(status, '200', stdout.slice(0, 300));
    const echoed = JSON.parse(stdout.slice(0, stdout.lastIndexOf('\n')));
    assert.equal(echoed.method, 'POST');
    assert.equal(echoed.headers.expect, undefined, 'Expect is not passed on');
    assert.ok(echoed.body.includes(content), 'the whole file arrived');
  });

  test('answers a GET that carries Expect: 100-continue', async () => {
    const res = await rawGet(base, '/counter/echo/x', { expect: '100-continue' });
    assert.equal(res.statusCode, 200, res.body);
  });
});
