import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { tempDir } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { writeIdx } from './helpers/datasets.ts';
import { numberedPng } from './helpers/images.ts';
import { freePort, type ServiceProcess, startService } from './helpers/process.ts';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const GATEWAY = fileURLToPath(new URL('../../gateway/src/main.ts', import.meta.url));
/** The gateway asks writes for a bearer token from API_TOKENS; the CLI sends BERTH_TOKEN. */
const TOKEN = randomBytes(24).toString('hex');

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let work: Awaited<ReturnType<typeof tempDir>>;
let images: ServiceProcess;
let gateway: ChildProcess;
let gatewayUrl: string;

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  work = await tempDir('berth-cli-');
  images = await startService({ DATABASE_URL: db.url, IMAGES_DIR: dir.path });
  const port = await freePort();
  gatewayUrl = `http://127.0.0.1:${port}`;
  gateway = spawn(process.execPath, [GATEWAY], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      IMAGES_URL: images.url,
      COUNTER_URL: '',
      JOKES_URL: '',
      API_TOKENS: TOKEN,
      // the rate limit counts in Redis; this test is about the CLI
      RATE_LIMIT_ENABLED: 'false',
    },
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${gatewayUrl}/readyz`)).ok) break;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

after(async () => {
  if (gateway && gateway.exitCode === null) {
    gateway.kill('SIGTERM');
    await once(gateway, 'exit');
  }
  await images?.stop();
  await db?.drop();
  await dir?.remove();
  await work?.remove();
});

const cli = (...args: string[]) =>
  run(process.execPath, [CLI, ...args], { env: { ...process.env, BERTH_URL: gatewayUrl, BERTH_TOKEN: TOKEN } });

test('npm run images -- import sends an IDX folder through the gateway and follows the job to the end', async () => {
  const folder = join(work.path, 'mnist');
  await mkdir(folder);
  await writeIdx(folder, { count: 500, prefix: 't10k', gzip: true });
  const { stdout } = await cli('import', folder, '--dataset', 'mnist-cli');
  assert.match(stdout, /^Import [0-9a-f-]+ completed: 500 imported, 0 duplicates, 0 failed of 500 in /m);
  const labels = (await (await fetch(`${gatewayUrl}/images/labels?dataset=mnist-cli`)).json()) as {
    items: { count: number; splits: { test: number } }[];
  };
  assert.equal(
    labels.items.reduce((sum, l) => sum + l.splits.test, 0),
    500,
  );
});

test('a folder of <label>/ images is packed as an ImageFolder tar, and export writes the tar back', async () => {
  const folder = join(work.path, 'pets');
  for (const [label, n] of [
    ['cat', 1],
    ['cat', 2],
    ['dog', 3],
  ] as const) {
    await mkdir(join(folder, label), { recursive: true });
    await writeFile(join(folder, label, `${n}.png`), await numberedPng(n));
  }
  const imported = await cli('import', folder, '--dataset', 'pets-cli', '--split', 'train');
  assert.match(imported.stdout, /completed: 3 imported/);
  const out = join(work.path, 'pets.tar');
  const exported = await cli('export', 'pets-cli', '--out', out);
  assert.match(exported.stdout, /^Exported 3 images of "pets-cli" to /);
  const names: string[] = [];
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      names.push(entry.header.name.split('/').slice(0, 2).join('/'));
      entry.resume();
    }
  })();
  extract.end(await readFile(out));
  await done;
  assert.deepEqual(names.sort(), ['train/cat', 'train/cat', 'train/dog']);
});

test('the CLI says what went wrong: a refused import, an unknown data set, an unreachable gateway', async () => {
  const bogus = join(work.path, 'notes.txt');
  await writeFile(bogus, 'just text');
  await assert.rejects(cli('import', bogus, '--dataset', 'x'), (err: { stderr: string; code: number }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /^422: /m);
    return true;
  });
  await assert.rejects(cli('export', 'no-such-set'), (err: { stderr: string }) => {
    assert.match(err.stderr, /404: Data set "no-such-set" holds no images/);
    return true;
  });
  await assert.rejects(
    run(process.execPath, [CLI, 'export', 'x'], { env: { ...process.env, BERTH_URL: 'http://127.0.0.1:1' } }),
    (err: { stderr: string }) => {
      assert.match(err.stderr, /^Cannot reach berth at http:\/\/127\.0\.0\.1:1/);
      return true;
    },
  );
});
