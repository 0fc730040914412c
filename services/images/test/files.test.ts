import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { leftovers, tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { multipart, noisyJpeg } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;
let jpeg: Buffer;
let image: { id: string; sha256: string; bytes: number };

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  ctx = await testApp(db.url, dir.path, { MAX_UPLOAD_BYTES: 4 * 1024 * 1024 });
  jpeg = await noisyJpeg();
  const response = await ctx.app.inject({
    method: 'POST',
    url: '/images?dataset=files',
    headers: { 'content-type': 'image/jpeg' },
    payload: jpeg,
  });
  image = response.json();
});

after(async () => {
  await ctx?.app.close();
  await db?.drop();
  await dir?.remove();
});

const get = (url: string, headers: Record<string, string> = {}) => ctx.app.inject({ method: 'GET', url, headers });

test('GET /images/:id/file answers the bytes with their Content-Type, a strong ETag and immutable caching', async () => {
  const response = await get(`/images/${image.id}/file`);
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'image/jpeg');
  assert.equal(response.headers.etag, `"${image.sha256}"`);
  assert.equal(response.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(response.headers['accept-ranges'], 'bytes');
  assert.equal(Number(response.headers['content-length']), jpeg.length);
  assert.deepEqual(response.rawPayload, jpeg);
});

test('If-None-Match with the ETag is a 304 without a body', async () => {
  const response = await get(`/images/${image.id}/file`, { 'if-none-match': `W/"x", "${image.sha256}"` });
  assert.equal(response.statusCode, 304);
  assert.equal(response.body, '');
  assert.equal(response.headers.etag, `"${image.sha256}"`);
  const other = await get(`/images/${image.id}/file`, { 'if-none-match': '"something-else"' });
  assert.equal(other.statusCode, 200);
});

test('Range requests get 206 with Content-Range: a span, an open end and a suffix', async () => {
  const span = await get(`/images/${image.id}/file`, { range: 'bytes=10-19' });
  assert.equal(span.statusCode, 206);
  assert.equal(span.headers['content-range'], `bytes 10-19/${jpeg.length}`);
  assert.deepEqual(span.rawPayload, jpeg.subarray(10, 20));
  const open = await get(`/images/${image.id}/file`, { range: `bytes=${jpeg.length - 5}-` });
  assert.deepEqual(open.rawPayload, jpeg.subarray(jpeg.length - 5));
  const suffix = await get(`/images/${image.id}/file`, { range: 'bytes=-3' });
  assert.equal(suffix.statusCode, 206);
  assert.deepEqual(suffix.rawPayload, jpeg.subarray(jpeg.length - 3));
  const past = await get(`/images/${image.id}/file`, { range: `bytes=0-${jpeg.length + 100}` });
  assert.equal(past.statusCode, 206);
  assert.equal(past.rawPayload.length, jpeg.length);
});

test('a range outside the file is a 416 that states the size; a stale If-Range sends the whole file', async () => {
  const outside = await get(`/images/${image.id}/file`, { range: `bytes=${jpeg.length}-` });
  assert.equal(outside.statusCode, 416);
  assert.equal(outside.headers['content-range'], `bytes */${jpeg.length}`);
  const stale = await get(`/images/${image.id}/file`, { range: 'bytes=0-9', 'if-range': '"old"' });
  assert.equal(stale.statusCode, 200);
  assert.equal(stale.rawPayload.length, jpeg.length);
  const several = await get(`/images/${image.id}/file`, { range: 'bytes=0-1,4-5' });
  assert.equal(several.statusCode, 200);
});

test('HEAD /images/:id/file gives the headers alone', async () => {
  const response = await ctx.app.inject({ method: 'HEAD', url: `/images/${image.id}/file` });
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'image/jpeg');
  assert.equal(response.body, '');
});

test('unknown and malformed ids are 404 and 400', async () => {
  const unknown = await get('/images/01890000-0000-7000-8000-000000000000/file');
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json().message, 'Image "01890000-0000-7000-8000-000000000000" does not exist');
  const malformed = await get('/images/not-a-uuid/file');
  assert.equal(malformed.statusCode, 400);
  assert.match(malformed.json().message, /^Path parameter "id" must be an image id \(a UUID\)/);
});

test('GET /images/:id/thumbnail makes a WebP that fits the size once and keeps it on the volume', async () => {
  const response = await get(`/images/${image.id}/thumbnail?size=64`);
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.headers['content-type'], 'image/webp');
  const meta = await sharp(response.rawPayload).metadata();
  assert.equal(meta.format, 'webp');
  assert.equal(Math.max(meta.width ?? 0, meta.height ?? 0), 64);
  const path = ctx.store.thumbnailPath(image.sha256, 64);
  const again = await get(`/images/${image.id}/thumbnail?size=64`);
  assert.deepEqual(again.rawPayload, response.rawPayload);
  await sharp(path).metadata();
  const cached = await get(`/images/${image.id}/thumbnail?size=64`, {
    'if-none-match': response.headers.etag as string,
  });
  assert.equal(cached.statusCode, 304);
  const wrong = await get(`/images/${image.id}/thumbnail?size=100`);
  assert.equal(wrong.statusCode, 400);
  assert.match(wrong.json().message, /^Query parameter "size" must be 64, 128 or 256/);
});

test('a row whose file went missing answers 500 FILE_MISSING rather than hanging or lying', async () => {
  const png = await sharp({ create: { width: 3, height: 3, channels: 3, background: '#010203' } })
    .png()
    .toBuffer();
  const created = await ctx.app.inject({
    method: 'POST',
    url: '/images?dataset=files',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  const { id, sha256 } = created.json();
  await rm(ctx.store.path(sha256));
  const response = await get(`/images/${id}/file`);
  assert.equal(response.statusCode, 500);
  assert.equal(response.json().code, 'FILE_MISSING');
  const thumb = await get(`/images/${id}/thumbnail`);
  assert.equal(thumb.statusCode, 500);
});

test('another replica stops serving a deleted image once FILE_REF_TTL_MS has passed', async () => {
  const replica = await testApp(db.url, dir.path, { FILE_REF_TTL_MS: 300 });
  try {
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#0a0b0c' } })
      .png()
      .toBuffer();
    const created = await ctx.app.inject({
      method: 'POST',
      url: '/images?dataset=elsewhere',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    const { id } = created.json();
    const url = `/images/${id}/file`;
    assert.equal((await replica.app.inject({ method: 'GET', url })).statusCode, 200);
    assert.equal((await ctx.app.inject({ method: 'DELETE', url: `/images/${id}` })).statusCode, 204);
    assert.equal((await get(url)).statusCode, 404, 'the replica that deleted it forgets at once');
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal((await replica.app.inject({ method: 'GET', url })).statusCode, 404);
  } finally {
    await replica.app.close();
  }
});

test('a large upload spills to a temp file on its way in and is served by a stream, Range included', async () => {
  const side = 700;
  const pixels = Buffer.alloc(side * side * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  const png = await sharp(pixels, { raw: { width: side, height: side, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
  assert.ok(png.length > 1024 * 1024, `${png.length} bytes`);
  const form = multipart([{ name: 'file', value: png, filename: 'big.png' }]);
  const created = await ctx.app.inject({ method: 'POST', url: '/images?dataset=big', ...form });
  assert.equal(created.statusCode, 201, created.body);
  const { id } = created.json();
  assert.deepEqual(await leftovers(dir.path), []);
  const whole = await get(`/images/${id}/file`);
  assert.deepEqual(whole.rawPayload, png);
  const tail = await get(`/images/${id}/file`, { range: 'bytes=-100' });
  assert.equal(tail.statusCode, 206);
  assert.deepEqual(tail.rawPayload, png.subarray(png.length - 100));
});
