// The README's first command on a real Docker Engine: `docker compose up --build -d --wait` on the
// project's files as committed, under a project name of its own on a free GATEWAY_PORT, then a
// user's journey through the gateway only, a restart of the stack, a crash, and `down -v`. Then
// npm test's Docker path: with nothing answering where the tests look, it starts Redis, PostgreSQL
// and NATS with compose itself. `npm run test:containers` (scripts/docker-engine.sh first).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openAsBlob } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '../../bench/lib/ports.ts';
import { writeBenchIdx } from '../../bench/scenarios/images.ts';
import { drillPng } from '../../scripts/lib/png.ts';
import { composer, inspect, leftovers, Phases, ROOT, removeImages, run, until, volumesOf } from './docker.ts';

const tag = `${process.pid}-${randomBytes(3).toString('hex')}`;
const project = `berth-containers-${tag}`;
const testProject = `berth-containers-npmtest-${tag}`;
const phases = new Phases();
const work = await mkdtemp(join(tmpdir(), 'berth-containers-'));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
// The environment a user's .env could set: the port, and a short inbox scan so the test does not
// wait 30 s twice; API_TOKENS empty so the token is the generated one, as on a first start.
const stack = composer(project, { GATEWAY_PORT: String(port), INBOX_SCAN_INTERVAL: '1s', API_TOKENS: '' });
const TEST_FILES = [
  'services/counter/test/routes/hits.test.ts',
  'packages/service-kit/test/postgres.test.ts',
  'services/images/test/outbox.test.ts',
];

after(async () => {
  // whatever happened, nothing of either project stays
  await stack.compose(['--profile', 'tools', 'down', '-v', '--remove-orphans', '--timeout', '20'], {
    allowFailure: true,
  });
  await composer(testProject, {}, ['docker-compose.yml', 'docker-compose.test.yml']).compose(
    ['down', '-v', '--remove-orphans', '--timeout', '20'],
    { allowFailure: true },
  );
  await removeImages(project).catch((err) => process.stderr.write(`${String(err)}\n`));
  await rm(work, { recursive: true, force: true });
  const summary = phases.done.map((p) => `${p.phase}: ${p.seconds.toFixed(1)} s`).join('\n# ');
  process.stdout.write(`# phase times\n# ${summary}\n`);
  await mkdir(join(ROOT, 'test-results/containers'), { recursive: true });
  await writeFile(
    join(ROOT, 'test-results/containers/phases.json'),
    `${JSON.stringify({ at: new Date().toISOString(), phases: phases.done }, null, 2)}\n`,
  );
});

/** The environment without the variable this runner sets for its children, so npm test runs as from a shell. */
function withoutTestRunner(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _runner, ...rest } = env;
  return rest;
}

/** A request to the gateway; `token` adds the bearer header. */
async function gateway(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const { token, headers, ...rest } = init;
  return fetch(`${base}${path}`, {
    ...rest,
    headers: { ...(headers as Record<string, string>), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    signal: AbortSignal.timeout(30_000),
  });
}

async function json<T = Record<string, unknown>>(path: string, init: RequestInit & { token?: string } = {}) {
  const response = await gateway(path, init);
  return { status: response.status, body: (await response.json()) as T };
}

async function hits(): Promise<string> {
  const response = await gateway('/');
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return response.text();
}

/** Reads the SSE feed until `enough` says the events seen so far suffice. */
async function readFeed(path: string, enough: (created: number) => boolean, timeoutMs: number): Promise<number> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let created = 0;
  try {
    const response = await fetch(`${base}${path}`, {
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      created += lines.filter((line) => line === 'event: created').length;
      if (enough(created)) break;
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return created;
}

// The two tests' timeouts add up to 14 minutes, so the whole run ends within 15 even when stuck.
test("the README's first command runs the whole backend on a real Docker Engine", {
  timeout: 10 * 60_000,
}, async () => {
  const { compose } = stack;
  process.stdout.write(`# project ${project}, gateway on ${base}\n`);

  await phases.time("pgAdmin's registered server follows POSTGRES_USER in compose's own rendering", async () => {
    const rendered = composer(project, { POSTGRES_USER: 'alice' });
    const { stdout } = await rendered.compose(['--profile', 'tools', 'config', '--format', 'json']);
    const file = JSON.parse(stdout) as {
      configs: Record<string, { content: string }>;
      services: Record<string, { configs?: Array<{ source: string }>; environment?: Record<string, string> }>;
    };
    const source = file.services.pgadmin?.configs?.[0]?.source ?? '';
    const servers = JSON.parse(file.configs[source]?.content ?? '{}').Servers;
    assert.deepEqual(
      Object.values(servers).map((server) => (server as { Username: string }).Username),
      [file.services.db?.environment?.POSTGRES_USER],
    );
    assert.equal(file.services.db?.environment?.POSTGRES_USER, 'alice');
  });

  await phases.time('build the images (docker compose build)', () => compose(['build'], { timeoutMs: 420_000 }));
  await phases.time('cold start (docker compose up --build -d --wait)', () =>
    compose(['up', '--build', '-d', '--wait'], { timeoutMs: 300_000 }),
  );
  // how long each Node service took from its container's start to its first passing healthcheck,
  // against the 60 s start_period the compose file allows
  for (const service of ['gateway', 'counter', 'jokes', 'images', 'images-worker']) {
    const container = (await compose(['ps', '-q', service])).stdout.trim();
    const state = JSON.parse(await inspect(container, '{{json .State}}')) as {
      StartedAt: string;
      Health: { Log: Array<{ End: string; ExitCode: number }> };
    };
    const passed = state.Health.Log.filter((entry) => entry.ExitCode === 0).map((entry) => Date.parse(entry.End));
    assert.ok(passed.length > 0, `${service} has no passing healthcheck`);
    const seconds = (Math.min(...passed) - Date.parse(state.StartedAt)) / 1000;
    assert.ok(seconds < 60, `${service} took ${seconds} s to pass its healthcheck`);
    phases.note(`${service} healthy after its container started`, seconds);
  }

  await phases.time('GET / counts 1 then 2; /readyz; /ui/ and its assets', async () => {
    assert.equal(await hits(), 'Hello World! I have been seen 1 times.\n');
    assert.equal(await hits(), 'Hello World! I have been seen 2 times.\n');
    const ready = await json<{ status: string }>('/readyz');
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    const page = await gateway('/ui/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1] as string);
    assert.ok(
      assets.some((a) => a.endsWith('.js')),
      `no script in the page: ${html.slice(0, 400)}`,
    );
    for (const asset of assets) {
      const response = await gateway(asset);
      assert.equal(response.status, 200, asset);
      assert.ok((await response.arrayBuffer()).byteLength > 0, `${asset} is empty`);
    }
  });

  // the README: the first start logs the token (docker compose logs gateway-secret)
  const token = await phases.time('the API token from the logs', async () => {
    const { stdout } = await compose(['logs', '--no-log-prefix', 'gateway-secret']);
    const found = /API token for writes through the gateway: ([0-9a-f]{64})/.exec(stdout)?.[1];
    assert.ok(found, `no token in the gateway-secret log:\n${stdout}`);
    assert.equal((await gateway('/counter/containers/increment', { method: 'POST' })).status, 401);
    return found;
  });

  const joke = `A container walks into a bar (${tag}).`;
  const jokeId = await phases.time('a joke written and read back', async () => {
    const created = await json<{ id: number; joke: string }>('/jokes', {
      method: 'POST',
      token,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ joke }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const read = await json<{ joke: string }>(`/jokes/${created.body.id}`);
    assert.equal(read.body.joke, joke);
    return created.body.id;
  });

  const picture = drillPng(Number.parseInt(randomBytes(4).toString('hex'), 16));
  const imageId = await phases.time('an image uploaded and downloaded byte-identical', async () => {
    const created = await json<{ id: string }>('/images?dataset=containers&label=cat', {
      method: 'POST',
      token,
      headers: { 'content-type': 'image/png' },
      body: picture,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const file = await gateway(`/images/${created.body.id}/file`);
    assert.equal(file.status, 200);
    assert.deepEqual(Buffer.from(await file.arrayBuffer()), picture);
    return created.body.id;
  });

  const count = 20;
  await phases.time(`a ${count}-image IDX import to completion, seen on the SSE feed`, async () => {
    const { images, labels } = await writeBenchIdx(work, count);
    const form = new FormData();
    form.set('dataset', 'containers-idx');
    form.set('split', 'train');
    form.set('format', 'idx');
    form.append('files', await openAsBlob(images), 'train-images-idx3-ubyte');
    form.append('files', await openAsBlob(labels), 'train-labels-idx1-ubyte');
    const queued = await json<{ id: string }>('/images/imports', { method: 'POST', token, body: form });
    assert.equal(queued.status, 202, JSON.stringify(queued.body));
    const job = await until(
      'the import to finish',
      async () => {
        const { body } = await json<{ status: string; imported: number }>(`/images/imports/${queued.body.id}`);
        return body.status === 'queued' || body.status === 'running' ? undefined : body;
      },
      120_000,
      500,
    );
    assert.deepEqual([job.status, job.imported], ['completed', count], JSON.stringify(job));
    const seen = await readFeed('/images/events?since=0&dataset=containers-idx', (n) => n >= count, 60_000);
    assert.equal(seen, count, 'created events on the feed');
  });

  await phases.time('inbox: a docker cp file is reported, the README recipe is imported', async () => {
    const cpDir = join(work, 'copied/containers-cp/cat');
    await mkdir(cpDir, { recursive: true });
    await writeFile(join(cpDir, 'by-cp.png'), drillPng(7));
    await compose(['cp', join(work, 'copied/containers-cp'), 'images:/data/inbox/']);
    const inboxDir = join(work, 'recipe/containers-inbox/train/dog');
    await mkdir(inboxDir, { recursive: true });
    await writeFile(join(inboxDir, 'by-recipe.png'), drillPng(8));
    // the README's recipe, word for word
    await run(
      'sh',
      [
        '-c',
        `tar -cf - -C ${join(work, 'recipe')} containers-inbox | docker compose exec -T images tar -xf - -C /data/inbox`,
      ],
      { env: stack.env },
    );
    const listed = await until(
      'the copied file to be listed as unclaimable',
      async () => {
        const { body } = await json<{ unclaimable: { files: Array<{ file: string; code: string; message: string }> } }>(
          '/images/inbox',
        );
        return body.unclaimable.files.find((f) => f.file === 'containers-cp/cat/by-cp.png');
      },
      60_000,
      500,
    );
    assert.equal(listed.code, 'EACCES');
    assert.match(listed.message, /uid 1000/);
    const { stdout } = await compose(['logs', '--no-log-prefix', 'images']);
    assert.equal(stdout.split('\n').filter((line) => line.includes('"file":"containers-cp/cat/by-cp.png"')).length, 1);
    const stored = await until(
      'the inbox file to be imported',
      async () => {
        const { body } = await json<{ items: Array<{ label: string; split: string }> }>(
          '/images?dataset=containers-inbox',
        );
        return body.items.length > 0 ? body.items : undefined;
      },
      60_000,
      500,
    );
    assert.deepEqual(
      stored.map((i) => [i.label, i.split]),
      [['dog', 'train']],
    );
  });

  // every volume the project's containers mount, anonymous ones included, must be gone at the end
  const volumes = new Set(await volumesOf(project));
  await phases.time('docker compose down', () => compose(['down'], { timeoutMs: 180_000 }));
  await phases.time('warm start (docker compose up -d --wait)', () =>
    compose(['up', '-d', '--wait'], { timeoutMs: 300_000 }),
  );
  await phases.time('the counter, joke, image and token survived', async () => {
    assert.equal(await hits(), 'Hello World! I have been seen 3 times.\n');
    assert.equal((await json<{ joke: string }>(`/jokes/${jokeId}`)).body.joke, joke);
    const file = await gateway(`/images/${imageId}/file`);
    assert.deepEqual(Buffer.from(await file.arrayBuffer()), picture);
    const write = await gateway('/counter/containers/increment', { method: 'POST', token });
    assert.equal(write.status, 200, await write.text());
  });

  await phases.time('crash: SIGKILL to the counter main process from the host', async () => {
    const container = (await compose(['ps', '-q', 'counter'])).stdout.trim();
    const restarts = Number(await inspect(container, '{{.RestartCount}}'));
    const pid = Number(await inspect(container, '{{.State.Pid}}'));
    assert.ok(pid > 1, `pid ${pid}`);
    const killed = performance.now();
    process.kill(pid, 'SIGKILL');
    await until(
      'the counter to run again',
      async () => {
        const [running, count] = (await inspect(container, '{{.State.Running}} {{.RestartCount}}')).split(' ');
        return running === 'true' && Number(count) > restarts ? true : undefined;
      },
      60_000,
      100,
    );
    phases.note('counter running again after the SIGKILL', (performance.now() - killed) / 1000);
    await until(
      'the counter to be healthy and the gateway ready',
      async () => {
        if ((await inspect(container, '{{.State.Health.Status}}')) !== 'healthy') return undefined;
        return (await gateway('/readyz')).status === 200 ? true : undefined;
      },
      120_000,
      100,
    );
    phases.note('counter healthy and gateway ready after the SIGKILL', (performance.now() - killed) / 1000);
    assert.equal(await hits(), 'Hello World! I have been seen 4 times.\n');
  });

  await phases.time('docker kill is a manual stop: not restarted until up', async () => {
    const container = (await compose(['ps', '-q', 'counter'])).stdout.trim();
    const restarts = await inspect(container, '{{.RestartCount}}');
    await run('docker', ['kill', container]);
    // the crash above was back within a second; give a restart five times that to show up
    await new Promise((resolve) => setTimeout(resolve, 5000));
    assert.equal(await inspect(container, '{{.State.Running}} {{.RestartCount}}'), `false ${restarts}`);
    await compose(['up', '-d', '--wait'], { timeoutMs: 180_000 });
    // the gateway may still hold its circuit open for a moment; a refused GET / counts nothing
    const body = await until(
      'GET / through the gateway again',
      async () => {
        const response = await gateway('/');
        return response.status === 200 ? response.text() : undefined;
      },
      60_000,
    );
    assert.equal(body, 'Hello World! I have been seen 5 times.\n');
  });

  await phases.time('docker compose down -v leaves nothing', async () => {
    for (const volume of await volumesOf(project)) volumes.add(volume);
    assert.ok(volumes.size >= 7, `volumes: ${[...volumes].join(', ')}`);
    await compose(['down', '-v'], { timeoutMs: 180_000 });
    assert.deepEqual(await leftovers(project, [...volumes]), []);
  });
});

test("npm test's Docker path starts Redis, PostgreSQL and NATS itself when none answers", {
  timeout: 4 * 60_000,
}, async () => {
  const [redis, postgres, nats] = [await freePort(), await freePort(), await freePort()];
  const { env, compose } = composer(testProject, {}, ['docker-compose.yml', 'docker-compose.test.yml']);
  const tests = await phases.time('npm test with Docker, on moved ports', () =>
    run(process.execPath, ['scripts/test.ts', '--test-reporter=spec', ...TEST_FILES], {
      env: {
        ...withoutTestRunner(env),
        TEST_REDIS_URL: `redis://127.0.0.1:${redis}`,
        TEST_DATABASE_URL: `postgres://postgres@127.0.0.1:${postgres}/postgres`,
        TEST_NATS_URL: `nats://127.0.0.1:${nats}`,
      },
      timeoutMs: 180_000,
      allowFailure: true,
    }),
  );
  assert.match(tests.stderr, /npm test: starting redis, db, nats with docker compose/);
  assert.equal(tests.code, 0, `${tests.stdout.split('\n').slice(-40).join('\n')}\n${tests.stderr}`);
  assert.match(tests.stdout, /ℹ pass [1-9]/);
  assert.match(tests.stdout, /ℹ fail 0/);
  const volumes = await volumesOf(testProject);
  await compose(['down', '-v'], { timeoutMs: 120_000 });
  assert.deepEqual(await leftovers(testProject, volumes), []);
});
