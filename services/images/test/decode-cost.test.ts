import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { AppConfig } from '../src/app.ts';
import { tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { multipart } from './helpers/images.ts';

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
/** A 7000x7000 RGBA PNG at 16 bits per channel: 0.6 MB of file, 392 MB of pixels. */
let bomb: Buffer;
/** A 4000x4000 RGBA PNG at 16 bits per channel: 128 MB of pixels, about a second to decode here. */
let heavy: Buffer;

/** A flat RGBA picture at 16 bits per channel, which PNG compresses to almost nothing. */
function sixteenBit(side: number, seed: number): Promise<Buffer> {
  const background = { r: seed % 256, g: 20, b: 30, alpha: 1 };
  return sharp({ create: { width: side, height: side, channels: 4, background } })
    .toColourspace('rgb16')
    .png({ compressionLevel: 9 })
    .toBuffer();
}

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  bomb = await sixteenBit(7000, 1);
  heavy = await sixteenBit(4000, 2);
});

after(async () => {
  await db?.drop();
  await dir?.remove();
});

type TestApp = Awaited<ReturnType<typeof testApp>>;
/** An upload of one image as a multipart form, and its answer. */
type Upload = (image: Buffer) => Promise<Awaited<ReturnType<TestApp['app']['inject']>>>;

/** Runs body against an images app with these settings (and room for the pictures above), closed after. */
async function withApp(
  settings: Partial<AppConfig>,
  body: (upload: Upload) => Promise<void>,
  inject?: (ctx: TestApp) => Promise<void>,
) {
  const ctx = await testApp(db.url, dir.path, { MAX_PIXELS: 50_000_000, ...settings });
  try {
    await body(async (image) => {
      const { payload, headers } = multipart([{ name: 'file', value: image, filename: 'big.png', type: 'image/png' }]);
      return await ctx.app.inject({ method: 'POST', url: '/images?dataset=costly', payload, headers });
    });
    await inject?.(ctx);
  } finally {
    await ctx.app.close();
  }
}

test('an image whose pixels would take more than MAX_DECODED_BYTES is refused from its header, at once', async () => {
  await withApp({}, async (upload) => {
    const started = performance.now();
    const res = await upload(bomb);
    const elapsed = performance.now() - started;
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(res.json().code, 'IMAGE_TOO_COSTLY');
    assert.match(
      res.json().message,
      /^The image is 7000x7000 with 4 channels of 16 bits: 392000000 bytes decoded, more than the limit of 200000000 \(MAX_DECODED_BYTES\)/,
    );
    assert.ok(elapsed < 1000, `answered after ${Math.round(elapsed)} ms`);
  });
});

test('uploads past DECODE_CONCURRENCY wait at most DECODE_WAIT_MS, then get 503 DECODER_BUSY', async () => {
  await withApp({ DECODE_CONCURRENCY: 1, DECODE_WAIT_MS: 100 }, async (upload) => {
    const started = performance.now();
    const answers = await Promise.all(
      [1, 2, 3].map(async () => {
        const res = await upload(heavy);
        return { status: res.statusCode, code: res.json().code as string, ms: performance.now() - started };
      }),
    );
    const busy = answers.filter((a) => a.status === 503);
    assert.ok(busy.length >= 1, JSON.stringify(answers));
    assert.ok(
      busy.every((a) => a.code === 'DECODER_BUSY' && a.ms < 1000),
      `refused quickly: ${JSON.stringify(answers)}`,
    );
    assert.ok(
      answers.some((a) => a.status === 201),
      `one was decoded and stored: ${JSON.stringify(answers)}`,
    );
  });
});

test('a decode that runs past DECODE_TIMEOUT_MS is answered with 422 at the deadline', async () => {
  // the 392 MB bomb let through the memory bound: its decode takes seconds, the deadline 100 ms
  await withApp({ DECODE_TIMEOUT_MS: 100, MAX_DECODED_BYTES: 400_000_000 }, async (upload) => {
    const started = performance.now();
    const res = await upload(bomb);
    const elapsed = performance.now() - started;
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(res.json().code, 'IMAGE_TOO_COSTLY');
    assert.match(res.json().message, /took longer than 100 ms to decode \(DECODE_TIMEOUT_MS\)/);
    assert.ok(elapsed < 1500, `answered after ${Math.round(elapsed)} ms`);
  });
});

test('a thumbnail of an image over THUMBNAIL_ON_DEMAND_PIXELS is made in the background: 409 until it is there', async () => {
  let id = '';
  await withApp(
    { THUMBNAIL_ON_DEMAND_PIXELS: 1_000_000 },
    async (upload) => {
      const res = await upload(await sixteenBit(2000, 4));
      assert.equal(res.statusCode, 201, res.body);
      id = res.json().id;
    },
    async ({ app }) => {
      const started = performance.now();
      const res = await app.inject({ url: `/images/${id}/thumbnail?size=64` });
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(res.json().code, 'THUMBNAIL_NOT_READY');
      assert.match(res.json().message, /^The image is 2000x2000, larger than 1000000 pixels/);
      assert.ok(performance.now() - started < 500);
      const deadline = Date.now() + 10_000;
      let again = await app.inject({ url: `/images/${id}/thumbnail?size=64` });
      while (again.statusCode === 409 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        again = await app.inject({ url: `/images/${id}/thumbnail?size=64` });
      }
      assert.equal(again.statusCode, 200, 'made in the background and served once there');
      assert.equal(again.headers['content-type'], 'image/webp');
    },
  );
});
