import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { FILE_LOCKS, fileKey } from '../src/storage/locks.ts';
import { leftovers, tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { claimingPng, multipart, noisyJpeg, numberedPng, solidImage } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  ctx = await testApp(db.url, dir.path, { MAX_UPLOAD_BYTES: 256 * 1024, MAX_PIXELS: 1_000_000 });
});

after(async () => {
  await ctx?.app.close();
  await db?.drop();
  await dir?.remove();
});

function upload(image: Buffer, fields: Record<string, string> = {}, filename = 'photo.png') {
  const parts = [
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
    { name: 'file', value: image, filename, type: 'image/png' },
  ];
  const { payload, headers } = multipart(parts);
  return ctx.app.inject({ method: 'POST', url: '/images', payload, headers });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function tempFiles(): Promise<string[]> {
  return leftovers(dir.path);
}

async function rowCount(): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM images');
  return row?.n ?? 0;
}

test('POST /images stores a multipart upload: 201, metadata, and the file under ab/cd/<sha256>', async () => {
  const png = await solidImage({ width: 20, height: 10 });
  const response = await upload(png, { dataset: 'pets', label: 'giraffe', split: 'train', tags: 'zoo,tall' }, 'g.png');
  assert.equal(response.statusCode, 201, response.body);
  const image = response.json();
  assert.match(image.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  assert.equal(response.headers.location, `/images/${image.id}`);
  assert.deepEqual(
    {
      dataset: image.dataset,
      label: image.label,
      split: image.split,
      tags: image.tags,
      format: image.format,
      contentType: image.contentType,
      width: image.width,
      height: image.height,
      channels: image.channels,
      bytes: image.bytes,
      filename: image.filename,
    },
    {
      dataset: 'pets',
      label: 'giraffe',
      split: 'train',
      tags: ['zoo', 'tall'],
      format: 'png',
      contentType: 'image/png',
      width: 20,
      height: 10,
      channels: 3,
      bytes: png.length,
      filename: 'g.png',
    },
  );
  const { sha256 } = image;
  const onDisk = await stat(join(dir.path, sha256.slice(0, 2), sha256.slice(2, 4), sha256));
  assert.equal(onDisk.size, png.length);
  assert.deepEqual(await tempFiles(), []);
  const fetched = await ctx.app.inject({ method: 'GET', url: `/images/${image.id}` });
  assert.deepEqual(fetched.json(), image);
});

test('POST /images takes a raw image/* body with the fields in the query', async () => {
  const jpeg = await solidImage({ format: 'jpeg', color: '#ff0000' });
  const response = await ctx.app.inject({
    method: 'POST',
    url: '/images?dataset=raw-set&label=red%20square&tags=a,b&filename=red.jpg',
    headers: { 'content-type': 'image/jpeg' },
    payload: jpeg,
  });
  assert.equal(response.statusCode, 201, response.body);
  const image = response.json();
  assert.equal(image.format, 'jpeg');
  assert.equal(image.label, 'red square');
  assert.deepEqual(image.tags, ['a', 'b']);
  assert.equal(image.split, null);
  assert.equal(image.filename, 'red.jpg');
});

test('the same bytes into the same data set answer 200 with the existing record; another data set gets its own row', async () => {
  const png = await numberedPng(1);
  const first = await upload(png, { dataset: 'dupes', label: 'one' });
  assert.equal(first.statusCode, 201);
  const again = await upload(png, { dataset: 'dupes', label: 'other' });
  assert.equal(again.statusCode, 200);
  assert.deepEqual(again.json(), first.json());
  const elsewhere = await upload(png, { dataset: 'dupes-2' });
  assert.equal(elsewhere.statusCode, 201);
  assert.notEqual(elsewhere.json().id, first.json().id);
  assert.equal(elsewhere.json().sha256, first.json().sha256);
});

test('racing uploads of the same bytes store one row: one 201, the rest 200 with its id', async () => {
  const png = await numberedPng(2);
  const before = await rowCount();
  const answers = await Promise.all(Array.from({ length: 12 }, () => upload(png, { dataset: 'race' })));
  const codes = answers.map((a) => a.statusCode).sort();
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
  assert.equal(new Set(answers.map((a) => a.json().id)).size, 1);
  assert.equal(await rowCount(), before + 1);
  assert.deepEqual(await tempFiles(), []);
});

test('bytes that are not an image are a 415 naming the accepted formats, and nothing is kept', async () => {
  const before = await rowCount();
  const response = await upload(Buffer.from('hello, this is plain text and not a picture'));
  assert.equal(response.statusCode, 415);
  assert.match(response.json().message, /^The content is not an image; send JPEG, PNG, WebP, GIF, TIFF, AVIF$/);
  assert.equal(await rowCount(), before);
  assert.deepEqual(await tempFiles(), []);
});

test('an image format that is not stored (SVG) is a 415 that names it', async () => {
  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
  );
  const response = await upload(svg, {}, 'x.svg');
  assert.equal(response.statusCode, 415);
  assert.match(response.json().message, /^SVG is not one of the formats stored here/);
});

test('truncated image bytes are a 422 with the decoder’s reason, and nothing is kept', async () => {
  const jpeg = await noisyJpeg();
  const before = await rowCount();
  const response = await upload(jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
  assert.equal(response.statusCode, 422, response.body);
  assert.equal(response.json().code, 'CORRUPT_IMAGE');
  assert.match(
    response.json().message,
    /^The JPEG image could not be decoded \(.*premature end.*\); the file looks damaged or truncated$/,
  );
  const header = await upload(jpeg.subarray(0, 40));
  assert.equal(header.statusCode, 422);
  assert.match(header.json().message, /^The image header could not be read \(.+\); the file looks damaged$/);
  assert.equal(await rowCount(), before);
  assert.deepEqual(await tempFiles(), []);
});

test('a PNG whose header claims 100000x100000 pixels is a 422 naming MAX_PIXELS, never decoded', async () => {
  const bomb = claimingPng(100_000, 100_000);
  const response = await upload(bomb);
  assert.equal(response.statusCode, 422, response.body);
  assert.equal(response.json().code, 'TOO_MANY_PIXELS');
  assert.match(response.json().message, /more pixels than the limit of 1000000 \(MAX_PIXELS\)/);
  const justOver = await upload(claimingPng(1001, 1000));
  assert.equal(justOver.statusCode, 422);
  assert.match(
    justOver.json().message,
    /^The image (is 1001x1000 \(1001000 pixels\), more than|has more pixels than) the limit/,
  );
  assert.deepEqual(await tempFiles(), []);
});

test('an upload over MAX_UPLOAD_BYTES is a 413 and leaves no temp file', async () => {
  const big = Buffer.alloc(300 * 1024, 7);
  const response = await upload(big);
  assert.equal(response.statusCode, 413);
  assert.equal(response.json().message, 'The upload is larger than the limit of 262144 bytes (MAX_UPLOAD_BYTES)');
  const raw = await ctx.app.inject({
    method: 'POST',
    url: '/images',
    headers: { 'content-type': 'image/png' },
    payload: big,
  });
  assert.equal(raw.statusCode, 413);
  assert.deepEqual(await tempFiles(), []);
});

test('a streamed upload over the limit is answered 413 long before the client has sent it all', async () => {
  const address = await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = new URL(address);
  const chunk = Buffer.alloc(64 * 1024, 1);
  let sent = 0;
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/images',
      headers: { 'content-type': 'image/png', 'transfer-encoding': 'chunked' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', (err) => (sent > 0 ? undefined : reject(err)));
    const pump = () => {
      // up to 200 MiB if nobody stops us
      while (sent < 200 * 1024 * 1024) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
  assert.equal(status, 413);
  assert.ok(sent < 32 * 1024 * 1024, `the client got to send ${sent} bytes`);
  assert.deepEqual(await tempFiles(), []);
});

test('a declared Content-Length over the limit is refused before the body is read', async () => {
  const response = await ctx.app.inject({
    method: 'POST',
    url: '/images',
    headers: { 'content-type': 'image/png', 'content-length': String(10 * 1024 * 1024) },
    payload: Buffer.alloc(10),
  });
  assert.equal(response.statusCode, 413);
  assert.equal(response.headers.connection, 'close');
});

test('bad names are 400s that quote the value and state the rule; nothing is stored', async () => {
  const png = await numberedPng(3);
  const before = await rowCount();
  const cases: [Record<string, string>, RegExp][] = [
    [{ label: 'cat/../x' }, /^Label "cat\/\.\.\/x" is not valid: it must be 1 to 128 characters without "\/"/],
    [{ dataset: 'My Data' }, /^Data set name "My Data" is not valid: it must be 1 to 64 characters of a-z/],
    [{ split: 'training' }, /^Split "training" is not valid: it must be one of train, test, val$/],
    [{ tags: 'ok,Bad Tag' }, /^Tag "Bad Tag" is not valid/],
    [{ label: '..' }, /^Label "\.\." is not valid/],
    [{ colour: 'red' }, /^Form field "colour" is not known/],
  ];
  for (const [fields, message] of cases) {
    const response = await upload(png, fields);
    assert.equal(response.statusCode, 400, JSON.stringify(fields));
    assert.match(response.json().message, message);
  }
  const query = await ctx.app.inject({
    method: 'POST',
    url: '/images?label=a%2Fb',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  assert.equal(query.statusCode, 400);
  assert.match(
    query.json().message,
    /^Query parameter "label" must be 1 to 128 characters without "\/".* \(got "a\/b"\)$/,
  );
  assert.equal(await rowCount(), before);
  assert.deepEqual(await tempFiles(), []);
  const [sha] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM images WHERE dataset = $1', ['default']);
  assert.equal(sha?.n, 0);
});

test('other bodies are a 415 that says how to send an image; an empty body or form is a 400', async () => {
  const json = await ctx.app.inject({ method: 'POST', url: '/images', payload: { image: 'abc' } });
  assert.equal(json.statusCode, 415);
  assert.match(json.json().message, /^Content-Type "application\/json" is not accepted here/);
  const empty = await ctx.app.inject({
    method: 'POST',
    url: '/images',
    headers: { 'content-type': 'image/png' },
    payload: '',
  });
  assert.equal(empty.statusCode, 400);
  const noFile = multipart([{ name: 'label', value: 'x' }]);
  const form = await ctx.app.inject({ method: 'POST', url: '/images', ...noFile });
  assert.equal(form.statusCode, 400);
  assert.match(form.json().message, /no file part/);
  const two = multipart([
    { name: 'file', value: await numberedPng(4), filename: 'a.png' },
    { name: 'file', value: await numberedPng(5), filename: 'b.png' },
  ]);
  const twoFiles = await ctx.app.inject({ method: 'POST', url: '/images', ...two });
  assert.equal(twoFiles.statusCode, 400);
  assert.match(twoFiles.json().message, /^Send one file per upload/);
  assert.deepEqual(await tempFiles(), []);
});

test('a file taken between its placement and the file lock is written again before the row commits', async () => {
  const bytes = await numberedPng(4242, 16);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const path = ctx.store.path(sha256);
  // a deleter holding the file's exclusive lock, as a DELETE or the sweep does while it removes files
  const deleter = new pg.Client({ connectionString: db.url });
  await deleter.connect();
  try {
    await deleter.query('SELECT pg_advisory_lock($1, $2)', [FILE_LOCKS, fileKey(sha256)]);
    const answer = upload(bytes, { dataset: 'raced' });
    // the upload places its new file before its transaction, then waits for the shared lock
    const started = Date.now();
    while (!(await exists(path))) {
      assert.ok(Date.now() - started < 10_000, 'the upload placed its file before taking the lock');
      await sleep(10);
    }
    await rm(path);
    await deleter.query('SELECT pg_advisory_unlock($1, $2)', [FILE_LOCKS, fileKey(sha256)]);
    const response = await answer;
    assert.equal(response.statusCode, 201, response.body);
    assert.deepEqual(await readFile(path), bytes, 'the row commits with its file in place');
    assert.deepEqual(await tempFiles(), []);
  } finally {
    await deleter.end();
  }
});
