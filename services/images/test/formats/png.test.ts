import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { encodePng } from '../../src/formats/png.ts';
import { pattern } from './helpers.ts';

// Decodes with an independent decoder (libvips/libspng) and returns the raw samples
async function decode(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const meta = await sharp(png).metadata();
  const pipeline = meta.channels === 1 ? sharp(png).toColourspace('b-w') : sharp(png);
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

const sizes: [number, number][] = [
  [1, 1],
  [7, 3],
  [28, 28],
  [32, 32],
  [300, 200],
];

for (const channels of [1, 3] as const) {
  for (const [width, height] of sizes) {
    test(`encodePng round-trips ${width}×${height} ${channels === 1 ? 'grey' : 'RGB'} noise exactly`, async () => {
      const pixels = pattern(width * 1000 + height + channels, width * height * channels);
      const decoded = await decode(encodePng({ width, height, channels, pixels }));
      assert.equal(decoded.width, width);
      assert.equal(decoded.height, height);
      assert.equal(decoded.channels, channels);
      assert.ok(decoded.data.equals(pixels), 'decoded pixels equal the input');
    });
  }
}

test('encodePng round-trips flat and gradient images, the ones deflate shrinks most', async () => {
  const width = 64;
  const height = 48;
  const flat = new Uint8Array(width * height).fill(0);
  const gradient = new Uint8Array(width * height * 3).map((_, i) => (i * 5) % 256);
  const flatPng = encodePng({ width, height, channels: 1, pixels: flat });
  assert.ok(flatPng.length < 200, `a flat image compresses (${flatPng.length} bytes)`);
  assert.ok((await decode(flatPng)).data.equals(flat));
  assert.ok((await decode(encodePng({ width, height, channels: 3, pixels: gradient }))).data.equals(gradient));
});

test('encodePng writes the PNG signature and an IHDR with 8-bit grey or truecolour', () => {
  const grey = encodePng({ width: 2, height: 3, channels: 1, pixels: new Uint8Array(6) });
  const rgb = encodePng({ width: 2, height: 3, channels: 3, pixels: new Uint8Array(18) });
  assert.deepEqual([...grey.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(grey.toString('latin1', 12, 16), 'IHDR');
  assert.equal(grey.readUInt32BE(16), 2);
  assert.equal(grey.readUInt32BE(20), 3);
  assert.equal(grey[24], 8);
  assert.equal(grey[25], 0);
  assert.equal(rgb[25], 2);
  assert.equal(grey.toString('latin1', grey.length - 8, grey.length - 4), 'IEND');
});

test('encodePng refuses a pixel buffer that does not match the size', () => {
  assert.throws(() => encodePng({ width: 28, height: 28, channels: 1, pixels: new Uint8Array(783) }), {
    name: 'RangeError',
    message: 'Pixel buffer has 783 bytes, expected 784 for 28×28×1',
  });
  assert.throws(() => encodePng({ width: 0, height: 28, channels: 1, pixels: new Uint8Array(0) }), RangeError);
  assert.throws(
    () => encodePng({ width: 2, height: 2, channels: 4 as 3, pixels: new Uint8Array(16) }),
    /Channel count 4 is not 1 or 3/,
  );
});
