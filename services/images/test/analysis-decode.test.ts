import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { decodeGrey, decodeSmallPng, greyFromSamples } from '../src/analysis/decode.ts';
import { encodePng } from '../src/formats/index.ts';

/** A 20x14 picture of `channels` 8-bit samples with some structure, as raw bytes; its lower rows repeat the one above. */
function samples(channels: number): Uint8Array {
  const stride = 20 * channels;
  const data = new Uint8Array(14 * stride);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i % channels) * 91) % 256;
  for (let y = 10; y < 14; y++) data.copyWithin(y * stride, (y - 1) * stride, y * stride);
  return data;
}

/** The filter type of each row of a PNG's image data. */
function filtersOf(png: Buffer, height: number): number[] {
  const at = png.indexOf('IDAT');
  const data = inflateSync(png.subarray(at + 4, at + 4 + png.readUInt32BE(at - 4)));
  const stride = data.length / height;
  return Array.from({ length: height }, (_, y) => data[y * stride] as number);
}

const filtersSeen = new Set<number>();

const raw = (data: Uint8Array, channels: 1 | 2 | 3 | 4) => sharp(data, { raw: { width: 20, height: 14, channels } });

for (const channels of [1, 2, 3, 4] as const) {
  test(`a small ${channels}-channel 8-bit PNG decodes here, without sharp, to the grey of the samples it holds`, async () => {
    const data = samples(channels);
    // every row filter type turns up in sharp's adaptive filtering over this picture
    const png = await raw(data, channels).png({ adaptiveFiltering: true, compressionLevel: 9 }).toBuffer();
    for (const filter of filtersOf(png, 14)) filtersSeen.add(filter);
    const here = decodeSmallPng(png);
    assert.ok(here, 'decoded without sharp');
    const expected = greyFromSamples(data, 20, 14, channels);
    assert.equal(here.width, 20);
    assert.equal(here.height, 14);
    assert.deepEqual([...here.pixels], [...expected.pixels]);
  });
}

test('those PNGs used every row filter there is', () => {
  assert.deepEqual([...filtersSeen].sort(), [0, 1, 2, 3, 4]);
});

test('the store’s own PNG encoding decodes here too', () => {
  const pixels = samples(1);
  const here = decodeSmallPng(encodePng({ width: 20, height: 14, channels: 1, pixels: Buffer.from(pixels) }));
  assert.deepEqual([...(here?.pixels ?? [])], [...pixels]);
});

test('PNGs this decoder does not take are left to sharp: palette, 16-bit, interlaced, large, EXIF', async () => {
  const data = samples(3);
  const palette = await raw(data, 3).png({ palette: true }).toBuffer();
  const deep = await raw(data, 3).png().toColourspace('rgb16').toBuffer();
  const interlaced = await raw(data, 3).png({ progressive: true }).toBuffer();
  const large = await sharp({ create: { width: 300, height: 20, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
  const exif = await raw(data, 3).png().withMetadata({ orientation: 6 }).toBuffer();
  for (const [name, png] of Object.entries({ palette, deep, interlaced, large, exif })) {
    assert.equal(decodeSmallPng(png), undefined, name);
    // and the whole path still decodes them
    const grey = await decodeGrey(png, 1_000_000);
    assert.ok(grey.width > 0 && grey.height > 0, name);
  }
  // an EXIF orientation of 6 turns the picture: 14 wide, 20 high
  const turned = await decodeGrey(exif, 1_000_000);
  assert.deepEqual([turned.width, turned.height], [14, 20]);
});

test('a PNG whose image data is cut short is refused, not decoded to noise', async () => {
  const png = await raw(samples(3), 3).png({ compressionLevel: 0 }).toBuffer();
  const idat = png.indexOf('IDAT');
  const length = png.readUInt32BE(idat - 4);
  const cut = Buffer.from(png);
  // the chunk's data keeps its length but its second half is zeros: the inflate fails or comes out short
  cut.fill(0, idat + 4 + Math.floor(length / 2), idat + 4 + length);
  assert.throws(() => decodeSmallPng(cut));
});
