import assert from 'node:assert/strict';
import { access, rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { numberedPng, solidImage } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;
const images: { id: string; sha256: string }[] = [];

/** Stores an image and returns its id and hash. */
async function upload(bytes: Buffer, type = 'image/png'): Promise<{ id: string; sha256: string }> {
  const response = await ctx.app.inject({
    method: 'POST',
    url: '/images?dataset=thumbs',
    headers: { 'content-type': type },
    payload: bytes,
  });
  assert.equal(response.statusCode, 201, response.body);
  return response.json();
}

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  ctx = await testApp(db.url, dir.path);
  for (let n = 0; n < 5; n++) images.push(await upload(await numberedPng(n, 200)));
});

after(async () => {
  await ctx?.app.close();
  await db?.drop();
  await dir?.remove();
});

const get = (url: string, headers: Record<string, string> = {}) => ctx.app.inject({ method: 'GET', url, headers });

interface Batch {
  items: { id: string; contentType: string; data: string }[];
  missing: string[];
}

/** The thumbnails of a batch answer as [id, bytes], checking each is of the type given. */
function thumbs(response: Awaited<ReturnType<typeof get>>, type = 'image/webp'): [string, Buffer][] {
  assert.match(response.headers['content-type'] as string, /^application\/json/);
  return (response.json() as Batch).items.map((item) => {
    assert.equal(item.contentType, type);
    return [item.id, Buffer.from(item.data, 'base64')];
  });
}

test('GET /images/thumbnails answers every thumbnail asked for, by id and in the order asked', async () => {
  const order = [images[3], images[0], images[4]].map((i) => i?.id as string);
  const response = await get(`/images/thumbnails?size=64&ids=${order.join(',')}`);
  assert.equal(response.statusCode, 200, response.body);
  const answered = thumbs(response);
  assert.deepEqual(
    answered.map(([id]) => id),
    order,
  );
  assert.deepEqual(response.json().missing, []);
  for (const [id, bytes] of answered) {
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, 'webp');
    assert.equal(Math.max(meta.width ?? 0, meta.height ?? 0), 64);
    // the same bytes the one-image route serves
    const single = await get(`/images/${id}/thumbnail?size=64`);
    assert.deepEqual(bytes, single.rawPayload);
  }
});

test('the thumbnails a batch makes are kept on the volume, and the size applies to all of them', async () => {
  const big = await upload(await numberedPng(100, 300));
  await assert.rejects(access(ctx.store.thumbnailPath(big.sha256, 128)), 'not made before it is asked for');
  const response = await get(`/images/thumbnails?ids=${big.id}`);
  assert.equal(response.statusCode, 200, response.body);
  const answered = thumbs(response);
  assert.equal(answered.length, 1);
  const [id, bytes] = answered[0] as [string, Buffer];
  assert.equal(id, big.id);
  const meta = await sharp(bytes).metadata();
  assert.equal(Math.max(meta.width ?? 0, meta.height ?? 0), 128, 'size defaults to 128');
  await access(ctx.store.thumbnailPath(big.sha256, 128));
  const large = await get(`/images/thumbnails?size=256&ids=${big.id}`);
  const [, largeBytes] = thumbs(large)[0] as [string, Buffer];
  const largeMeta = await sharp(largeBytes).metadata();
  assert.equal(Math.max(largeMeta.width ?? 0, largeMeta.height ?? 0), 256);
});

test('an image no larger than the size, stored as PNG or JPEG, is sent as its own thumbnail', async () => {
  const png = await numberedPng(300, 28);
  const jpeg = await solidImage({ width: 32, height: 20, color: '#224466', format: 'jpeg' });
  const gif = await solidImage({ width: 20, height: 20, color: '#664422', format: 'gif' });
  const small = await upload(png);
  const photo = await upload(jpeg, 'image/jpeg');
  const animated = await upload(gif, 'image/gif');
  const response = await get(`/images/thumbnails?size=128&ids=${small.id},${photo.id},${animated.id}`);
  assert.equal(response.statusCode, 200, response.body);
  const [first, second, third] = (response.json() as Batch).items;
  assert.deepEqual(
    [first?.contentType, second?.contentType, third?.contentType],
    ['image/png', 'image/jpeg', 'image/webp'],
  );
  assert.deepEqual(Buffer.from(first?.data ?? '', 'base64'), png);
  assert.deepEqual(Buffer.from(second?.data ?? '', 'base64'), jpeg);
  await assert.rejects(access(ctx.store.thumbnailPath(small.sha256, 128)), 'no thumbnail file made for it');
  // larger than the size asked for: a WebP that fits
  const fitted = await get(`/images/thumbnails?size=64&ids=${images[0]?.id}`);
  assert.equal(thumbs(fitted).length, 1);
  const tiny = await get(`/images/thumbnails?size=64&ids=${small.id}`);
  assert.deepEqual(thumbs(tiny, 'image/png'), [[small.id, png]]);
});

test('a complete answer has an ETag and is cached as immutable; If-None-Match with it is a 304', async () => {
  const ids = images.map((i) => i.id).join(',');
  const response = await get(`/images/thumbnails?size=128&ids=${ids}`);
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['cache-control'], 'public, max-age=31536000, immutable');
  const etag = response.headers.etag as string;
  assert.match(etag, /^W\/"[A-Za-z0-9_-]+"$/);
  const again = await get(`/images/thumbnails?size=128&ids=${ids}`, { 'if-none-match': etag });
  assert.equal(again.statusCode, 304);
  assert.equal(again.body, '');
  // another size or another set of ids is another answer
  const other = await get(`/images/thumbnails?size=64&ids=${ids}`, { 'if-none-match': etag });
  assert.equal(other.statusCode, 200);
  assert.notEqual(other.headers.etag, etag);
  const fewer = await get(`/images/thumbnails?size=128&ids=${images[0]?.id}`, { 'if-none-match': etag });
  assert.equal(fewer.statusCode, 200);
});

test('unknown ids are left out, repeated ids answered once, and such an answer is not cached for good', async () => {
  const unknown = '01890000-0000-7000-8000-000000000000';
  const first = images[0]?.id as string;
  const response = await get(`/images/thumbnails?ids=${unknown},${first},${first.toUpperCase()}`);
  assert.equal(response.statusCode, 200, response.body);
  assert.deepEqual(
    thumbs(response).map(([id]) => id),
    [first],
  );
  assert.deepEqual(response.json().missing, [unknown]);
  assert.equal(response.headers['cache-control'], 'no-cache');
  assert.equal(response.headers.etag, undefined);
  const none = await get(`/images/thumbnails?ids=${unknown}`);
  assert.equal(none.statusCode, 200);
  assert.deepEqual(none.json(), { items: [], missing: [unknown] });
});

test('an image whose file went missing is left out while the others are answered', async () => {
  const lost = await upload(await numberedPng(200, 40));
  await rm(ctx.store.path(lost.sha256));
  const kept = images[1]?.id as string;
  const response = await get(`/images/thumbnails?ids=${lost.id},${kept}`);
  assert.equal(response.statusCode, 200, response.body);
  assert.deepEqual(
    thumbs(response).map(([id]) => id),
    [kept],
  );
  assert.deepEqual(response.json().missing, [lost.id]);
  assert.equal(response.headers['cache-control'], 'no-cache');
  const alone = await get(`/images/${lost.id}/thumbnail`);
  assert.equal(alone.statusCode, 500, 'the one-image route says what is wrong with it');
});

test('ids must be 1 to 100 UUIDs separated by commas, and the size one of 64, 128, 256', async () => {
  const id = images[0]?.id as string;
  const expected = /^Query parameter "ids" must be 1 to 100 image ids \(UUIDs\) separated by commas/;
  for (const ids of ['', 'not-a-uuid', `${id},`, `${id};${id}`, `${id}, ${id}`, Array(101).fill(id).join(',')]) {
    const response = await get(`/images/thumbnails?ids=${encodeURIComponent(ids)}`);
    assert.equal(response.statusCode, 400, `ids=${ids.slice(0, 60)}`);
    assert.match(response.json().message, expected);
  }
  const missing = await get('/images/thumbnails?size=128');
  assert.equal(missing.statusCode, 400);
  assert.match(missing.json().message, /ids/);
  const hundred = await get(`/images/thumbnails?ids=${Array(100).fill(id).join(',')}`);
  assert.equal(hundred.statusCode, 200);
  const size = await get(`/images/thumbnails?size=100&ids=${id}`);
  assert.equal(size.statusCode, 400);
  assert.match(size.json().message, /^Query parameter "size" must be 64, 128 or 256/);
  const extra = await get(`/images/thumbnails?ids=${id}&colour=red`);
  assert.equal(extra.statusCode, 400);
});
