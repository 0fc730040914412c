import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { crc32, createDeflate, deflateSync } from 'node:zlib';
import sharp, { type PngOptions } from 'sharp';
import { encodePng } from '../../src/formats/png.ts';
import { checkPng, PngDamage } from '../../src/formats/png-check.ts';
import { CHECKED_PNG_PIXELS, decodeImage, type ImageInfo, inspectImage } from '../../src/inspect.ts';
import { pattern } from './helpers.ts';

const MAX_PIXELS = 1_000_000;
const LIMITS = { maxPixels: MAX_PIXELS, checkPixels: CHECKED_PNG_PIXELS };
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

interface Chunk {
  type: string;
  data: Buffer;
}

// Splits a PNG into its chunks (trusting it: only well-formed files are taken apart)
function chunksOf(png: Buffer): Chunk[] {
  const chunks: Chunk[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    chunks.push({ type: png.toString('latin1', at + 4, at + 8), data: png.subarray(at + 8, at + 8 + length) });
    at += 12 + length;
  }
  return chunks;
}

function chunkBytes({ type, data }: Chunk, crc?: number): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc ?? crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function assemble(chunks: Chunk[]): Buffer {
  return Buffer.concat([SIGNATURE, ...chunks.map((chunk) => chunkBytes(chunk))]);
}

function ihdr(width: number, height: number, depth: number, colourType: number, interlace = 0): Chunk {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data[8] = depth;
  data[9] = colourType;
  data[12] = interlace;
  return { type: 'IHDR', data };
}

const IEND: Chunk = { type: 'IEND', data: Buffer.alloc(0) };

// A non-interlaced PNG from scanlines given whole (filter bytes included), deflated as they are
function pngOf(header: Chunk, scanlines: Buffer, extra: Chunk[] = []): Buffer {
  return assemble([header, ...extra, { type: 'IDAT', data: deflateSync(scanlines) }, IEND]);
}

// Scanlines of `rows` × `stride` bytes of noise, each with filter type 0
function scanlinesOf(rows: number, stride: number, seed: number): Buffer {
  const out = Buffer.from(pattern(seed, rows * (stride + 1)));
  for (let y = 0; y < rows; y++) out[y * (stride + 1)] = 0;
  return out;
}

// Inserts chunks right after the first chunk of a type
function insertAfter(png: Buffer, type: string, ...extra: Chunk[]): Buffer {
  const chunks = chunksOf(png);
  const at = chunks.findIndex((chunk) => chunk.type === type);
  assert.ok(at >= 0, `the PNG has a ${type} chunk`);
  chunks.splice(at + 1, 0, ...extra);
  return assemble(chunks);
}

function header(png: Buffer) {
  return { depth: png[24], colourType: png[25], interlace: png[28] };
}

function noise(width: number, height: number, channels: 1 | 2 | 3 | 4, seed: number) {
  return sharp(Buffer.from(pattern(seed, width * height * channels)), { raw: { width, height, channels } });
}

// Grey or grey+alpha noise with some pixels fully transparent, for palettes with a tRNS chunk
function withHoles(width: number, height: number, seed: number) {
  const pixels = Buffer.from(pattern(seed, width * height * 4));
  for (let i = 3; i < pixels.length; i += 4) pixels[i] = i % 12 === 3 ? 0 : 255;
  return sharp(pixels, { raw: { width, height, channels: 4 } });
}

// Every kind of PNG sharp writes, and low-depth greyscale (which sharp does not write) by hand
type Maker = (width: number, height: number, seed: number, progressive: boolean) => Promise<Buffer>;
interface Kind {
  maker: Maker;
  depth: number;
  colourType: number;
}
const viaSharp = (channels: 0 | 1 | 2 | 3 | 4, space: string | undefined, options: PngOptions = {}): Maker => {
  return (w, h, s, progressive) => {
    const image = channels === 0 ? withHoles(w, h, s) : noise(w, h, channels, s);
    return (space ? image.toColourspace(space) : image).png({ ...options, progressive }).toBuffer();
  };
};
const trns = (data: number[], make: Maker): Maker => {
  return async (w, h, s, progressive) =>
    insertAfter(await make(w, h, s, progressive), 'IHDR', { type: 'tRNS', data: Buffer.from(data) });
};
const KINDS: Record<string, Kind> = {
  'grey 8-bit': { maker: viaSharp(1, 'b-w'), depth: 8, colourType: 0 },
  'grey 16-bit': { maker: viaSharp(1, 'grey16'), depth: 16, colourType: 0 },
  'grey+alpha 8-bit': { maker: viaSharp(2, 'b-w'), depth: 8, colourType: 4 },
  'grey+alpha 16-bit': { maker: viaSharp(2, 'grey16'), depth: 16, colourType: 4 },
  'RGB 8-bit': { maker: viaSharp(3, undefined), depth: 8, colourType: 2 },
  'RGB 16-bit': { maker: viaSharp(3, 'rgb16'), depth: 16, colourType: 2 },
  'RGBA 8-bit': { maker: viaSharp(4, undefined), depth: 8, colourType: 6 },
  'RGBA 16-bit': { maker: viaSharp(4, 'rgb16'), depth: 16, colourType: 6 },
  'palette 8-bit': { maker: viaSharp(3, undefined, { palette: true }), depth: 8, colourType: 3 },
  'palette 4-bit': { maker: viaSharp(3, undefined, { palette: true, colours: 16 }), depth: 4, colourType: 3 },
  'palette 2-bit': { maker: viaSharp(3, undefined, { palette: true, colours: 4 }), depth: 2, colourType: 3 },
  'palette 1-bit': { maker: viaSharp(3, undefined, { palette: true, colours: 2 }), depth: 1, colourType: 3 },
  'palette 8-bit with tRNS': { maker: viaSharp(0, undefined, { palette: true }), depth: 8, colourType: 3 },
  'palette 1-bit with tRNS': { maker: viaSharp(0, undefined, { palette: true, colours: 2 }), depth: 1, colourType: 3 },
  'grey 1-bit': { maker: byHand(1), depth: 1, colourType: 0 },
  'grey 2-bit': { maker: byHand(2), depth: 2, colourType: 0 },
  'grey 4-bit': { maker: byHand(4), depth: 4, colourType: 0 },
  'grey 8-bit with tRNS': {
    maker: trns([0, 7], (w, h, s, progressive) =>
      progressive
        ? viaSharp(1, 'b-w')(w, h, s, true)
        : Promise.resolve(encodePng({ width: w, height: h, channels: 1, pixels: pattern(s, w * h) })),
    ),
    depth: 8,
    colourType: 0,
  },
  'grey 16-bit with tRNS': { maker: trns([1, 7], viaSharp(1, 'grey16')), depth: 16, colourType: 0 },
  'RGB 8-bit with tRNS': {
    maker: trns([0, 1, 0, 2, 0, 3], (w, h, s, progressive) =>
      progressive
        ? viaSharp(3, undefined)(w, h, s, true)
        : Promise.resolve(encodePng({ width: w, height: h, channels: 3, pixels: pattern(s, w * h * 3) })),
    ),
    depth: 8,
    colourType: 2,
  },
};

// Greyscale of 1, 2 or 4 bits: noise scanlines (filter 0), interlaced by counting each Adam7 pass's pixels
function byHand(depth: number): Maker {
  return async (w, h, s, progressive) => {
    if (!progressive) return pngOf(ihdr(w, h, depth, 0), scanlinesOf(h, Math.ceil((w * depth) / 8), s));
    const passes = [
      [0, 0, 8, 8],
      [4, 0, 8, 8],
      [0, 4, 4, 8],
      [2, 0, 4, 4],
      [0, 2, 2, 4],
      [1, 0, 2, 2],
      [0, 1, 1, 2],
    ];
    const parts: Buffer[] = [];
    for (const [x0, y0, dx, dy] of passes as [number, number, number, number][]) {
      let columns = 0;
      for (let x = x0; x < w; x += dx) columns++;
      let rows = 0;
      for (let y = y0; y < h; y += dy) rows++;
      if (columns > 0 && rows > 0) parts.push(scanlinesOf(rows, Math.ceil((columns * depth) / 8), s + parts.length));
    }
    return pngOf(ihdr(w, h, depth, 0, 1), Buffer.concat(parts));
  };
}

const SIZES: [number, number][] = [
  [1, 1],
  [2, 3],
  [7, 5],
  [28, 28],
  [33, 17],
  [100, 1],
  [1, 100],
  [256, 256],
];

async function sharpAnswer(png: Buffer): Promise<ImageInfo> {
  return decodeImage(png, MAX_PIXELS);
}

for (const [name, { maker, depth, colourType }] of Object.entries(KINDS)) {
  for (const interlaced of [false, true]) {
    test(`the zlib check reads ${name}${interlaced ? ' interlaced' : ''} PNGs as sharp does, 1x1 to 256x256`, async () => {
      for (const [index, [width, height]] of SIZES.entries()) {
        const png = await maker(width, height, index + 1, interlaced);
        const made = header(png);
        assert.deepEqual(
          made,
          { depth, colourType, interlace: interlaced ? 1 : 0 },
          `${width}x${height} is made as meant`,
        );
        const expected = await sharpAnswer(png);
        const checked = checkPng(png, LIMITS);
        assert.deepEqual(checked, { kind: 'valid', width, height, channels: expected.channels }, `${width}x${height}`);
        assert.deepEqual(await inspectImage(png, MAX_PIXELS), expected, `${width}x${height}`);
      }
    });
  }
}

test('odd files that decoders accept get the channels sharp reports', async () => {
  const grey = encodePng({ width: 5, height: 4, channels: 1, pixels: pattern(1, 20) });
  const rgb = encodePng({ width: 5, height: 4, channels: 3, pixels: pattern(2, 60) });
  const rgba = await noise(5, 4, 4, 3).png().toBuffer();
  const greyAlpha = await noise(5, 4, 2, 4).toColourspace('b-w').png().toBuffer();
  const palette = await noise(5, 4, 3, 5).png({ palette: true, colours: 2 }).toBuffer();
  const tRNS = (...bytes: number[]): Chunk => ({ type: 'tRNS', data: Buffer.from(bytes) });
  const withChunks = (png: Buffer, extra: Chunk[], where: 'before IDAT' | 'after IDAT') => {
    const chunks = chunksOf(png);
    const idat = chunks.findIndex((chunk) => chunk.type === 'IDAT');
    chunks.splice(where === 'before IDAT' ? idat : idat + 1, 0, ...extra);
    return assemble(chunks);
  };
  const paletteChunks = chunksOf(palette);
  const plte = paletteChunks.find((chunk) => chunk.type === 'PLTE') as Chunk;
  const cases: [string, Buffer][] = [
    ['grey, tRNS of the wrong length', withChunks(grey, [tRNS(0, 1, 2)], 'before IDAT')],
    ['grey, tRNS after the image data', withChunks(grey, [tRNS(0, 1)], 'after IDAT')],
    ['grey, tRNS twice, the first of the wrong length', withChunks(grey, [tRNS(0), tRNS(0, 1)], 'before IDAT')],
    ['grey, a PLTE chunk', withChunks(grey, [{ type: 'PLTE', data: Buffer.alloc(6) }], 'before IDAT')],
    ['RGB, tRNS of the wrong length', withChunks(rgb, [tRNS(0, 1)], 'before IDAT')],
    ['RGB, a suggested palette', withChunks(rgb, [{ type: 'PLTE', data: Buffer.alloc(6) }], 'before IDAT')],
    ['RGB, a palette after the image data', withChunks(rgb, [{ type: 'PLTE', data: Buffer.alloc(6) }], 'after IDAT')],
    ['RGBA, a tRNS chunk', withChunks(rgba, [tRNS(0, 1, 0, 2, 0, 3)], 'before IDAT')],
    ['grey+alpha, a tRNS chunk', withChunks(greyAlpha, [tRNS(0, 1)], 'before IDAT')],
    ['palette, tRNS longer than the palette', withChunks(palette, [tRNS(0, 0, 0)], 'before IDAT')],
    ['palette, empty tRNS', withChunks(palette, [tRNS()], 'before IDAT')],
    [
      '1-bit palette of 3 entries, tRNS of 2',
      assemble([
        paletteChunks[0] as Chunk,
        { type: 'PLTE', data: Buffer.concat([plte.data, Buffer.alloc(3)]) },
        tRNS(0, 0),
        ...paletteChunks.filter((chunk) => chunk.type === 'IDAT' || chunk.type === 'IEND'),
      ]),
    ],
    [
      '1-bit palette of 3 entries, tRNS of 3 (more than 1 bit indexes)',
      assemble([
        paletteChunks[0] as Chunk,
        { type: 'PLTE', data: Buffer.concat([plte.data, Buffer.alloc(3)]) },
        tRNS(0, 0, 0),
        ...paletteChunks.filter((chunk) => chunk.type === 'IDAT' || chunk.type === 'IEND'),
      ]),
    ],
    [
      'palette, tRNS before PLTE',
      assemble([
        paletteChunks[0] as Chunk,
        tRNS(0),
        ...paletteChunks.filter((chunk) => chunk.type !== 'IHDR' && chunk.type !== 'tRNS'),
      ]),
    ],
    ['an unknown ancillary chunk', withChunks(grey, [{ type: 'ruSt', data: Buffer.from('x') }], 'before IDAT')],
    ['an APNG acTL chunk', withChunks(grey, [{ type: 'acTL', data: Buffer.alloc(8) }], 'before IDAT')],
    ['an empty IDAT before the data', withChunks(grey, [{ type: 'IDAT', data: Buffer.alloc(0) }], 'before IDAT')],
    ['bytes after IEND', Buffer.concat([grey, Buffer.from('trailing')])],
    ['bytes after the zlib stream', withIdat(grey, (z) => Buffer.concat([z, Buffer.from([1, 2, 3])]))],
    ['IDAT split into one-byte chunks', splitIdat(grey, 1)],
  ];
  for (const [what, png] of cases) {
    const expected = await sharpAnswer(png);
    assert.deepEqual(checkPng(png, LIMITS), { kind: 'valid', ...pick(expected) }, what);
    assert.deepEqual(await inspectImage(png, MAX_PIXELS), expected, what);
  }
});

function pick({ width, height, channels }: ImageInfo) {
  return { width, height, channels };
}

// Replaces the (single) IDAT's data
function withIdat(png: Buffer, change: (data: Buffer) => Buffer): Buffer {
  return assemble(
    chunksOf(png).map((chunk) => (chunk.type === 'IDAT' ? { type: 'IDAT', data: change(chunk.data) } : chunk)),
  );
}

function splitIdat(png: Buffer, size: number): Buffer {
  const out: Chunk[] = [];
  for (const chunk of chunksOf(png)) {
    if (chunk.type !== 'IDAT') out.push(chunk);
    else
      for (let at = 0; at < chunk.data.length; at += size)
        out.push({ type: 'IDAT', data: chunk.data.subarray(at, at + size) });
  }
  return assemble(out);
}

// The refusal inspectImage gives, as code and message
async function refusal(png: Buffer): Promise<{ statusCode: number; code: string; message: string }> {
  try {
    await inspectImage(png, MAX_PIXELS);
  } catch (err) {
    const { statusCode, code, message } = err as { statusCode: number; code: string; message: string };
    return { statusCode, code, message };
  }
  assert.fail('the PNG was accepted');
}

const DATA_DAMAGE = /^The PNG image could not be decoded \((.+)\); the file looks damaged or truncated$/;
const HEADER_DAMAGE = /^The image header could not be read \((.+)\); the file looks damaged$/;

async function assertDamaged(png: Buffer, reason: RegExp, shape = DATA_DAMAGE) {
  const { statusCode, code, message } = await refusal(png);
  assert.equal(statusCode, 422);
  assert.equal(code, 'CORRUPT_IMAGE');
  const match = shape.exec(message);
  assert.ok(match, `"${message}" has the usual shape`);
  assert.match(match[1] as string, reason);
}

async function sharpRefuses(png: Buffer): Promise<boolean> {
  try {
    await decodeImage(png, MAX_PIXELS);
    return false;
  } catch (err) {
    assert.equal((err as { code: string }).code, 'CORRUPT_IMAGE');
    return true;
  }
}

test('a PNG cut short at any byte after its signature is a 422 CORRUPT_IMAGE', async () => {
  const png = encodePng({ width: 28, height: 28, channels: 1, pixels: pattern(9, 784) });
  for (let cut = 8; cut < png.length; cut++) {
    const { statusCode, code, message } = await refusal(png.subarray(0, cut));
    assert.equal(statusCode, 422, `cut at ${cut}`);
    assert.equal(code, 'CORRUPT_IMAGE', `cut at ${cut}`);
    assert.match(message, /ends|inflate|fewer/, `cut at ${cut}: ${message}`);
  }
});

test('a flipped byte in the image data fails the IDAT chunk’s CRC', async () => {
  const png = encodePng({ width: 28, height: 28, channels: 1, pixels: pattern(10, 784) });
  const at = png.indexOf('IDAT') + 4 + 10;
  const damaged = Buffer.from(png);
  damaged[at] = (damaged[at] as number) ^ 0x40;
  await assertDamaged(damaged, /^the IDAT chunk's CRC is 0x[0-9a-f]{8}, but its bytes give 0x[0-9a-f]{8}$/);
  assert.ok(await sharpRefuses(damaged));
});

test('a damaged IHDR is refused as a header problem', async () => {
  const png = encodePng({ width: 4, height: 4, channels: 1, pixels: pattern(11, 16) });
  const damaged = Buffer.from(png);
  damaged[17] = (damaged[17] as number) ^ 1; // the width
  await assertDamaged(damaged, /^the IHDR chunk's CRC is/, HEADER_DAMAGE);
  assert.throws(
    () => checkPng(damaged, LIMITS),
    (err) => err instanceof PngDamage && err.part === 'header',
  );
  const scanlines = scanlinesOf(4, 4, 1);
  const headers: [Chunk, RegExp][] = [
    [ihdr(0, 4, 8, 0), /size of 0x4/],
    [ihdr(4, 0x80000000, 8, 0), /size of 4x2147483648/],
    [ihdr(4, 4, 16, 3), /bit depth 16, not allowed with colour type 3/],
    [ihdr(4, 4, 4, 2), /bit depth 4, not allowed with colour type 2/],
    [ihdr(4, 4, 8, 5), /colour type 5/],
    [ihdr(4, 4, 8, 0, 2), /interlace method 2/],
    [{ type: 'IHDR', data: Buffer.concat([ihdr(4, 4, 8, 0).data, Buffer.alloc(1)]) }, /14 bytes long, not 13/],
  ];
  const compression = ihdr(4, 4, 8, 0);
  compression.data[10] = 1;
  const filter = ihdr(4, 4, 8, 0);
  filter.data[11] = 64;
  headers.push([compression, /compression method 1/], [filter, /filter method 64/]);
  for (const [chunk, reason] of headers) {
    const bad = pngOf(chunk, scanlines);
    await assertDamaged(bad, reason, HEADER_DAMAGE);
    assert.ok(await sharpRefuses(bad), `sharp refuses it too: ${reason}`);
  }
  await assertDamaged(
    assemble([{ type: 'tEXt', data: Buffer.from('a\0b') }, ...chunksOf(png)]),
    /first chunk is "tEXt"/,
    HEADER_DAMAGE,
  );
});

test('valid CRCs around corrupt zlib data are a 422 saying the data does not inflate', async () => {
  const png = encodePng({ width: 28, height: 28, channels: 1, pixels: pattern(12, 784) });
  const garbled = withIdat(png, (z) => {
    const copy = Buffer.from(z);
    for (let i = 2; i < copy.length; i += 3) copy[i] = (copy[i] as number) ^ 0xa5;
    return copy;
  });
  await assertDamaged(garbled, /^the image data does not inflate: /);
  const badChecksum = withIdat(png, (z) => {
    const copy = Buffer.from(z);
    copy[copy.length - 1] = (copy[copy.length - 1] as number) ^ 1;
    return copy;
  });
  await assertDamaged(badChecksum, /^the image data does not inflate: .*check/i);
  assert.ok(await sharpRefuses(garbled));
  assert.ok(await sharpRefuses(badChecksum));
});

test('too little or too much image data for the header’s size is a 422 naming both sizes', async () => {
  const head = ihdr(6, 5, 8, 2); // 5 rows of 1 + 18 bytes
  const exact = scanlinesOf(5, 18, 13);
  assert.deepEqual(checkPng(pngOf(head, exact), LIMITS), { kind: 'valid', width: 6, height: 5, channels: 3 });
  const short = pngOf(head, exact.subarray(0, exact.length - 1));
  await assertDamaged(short, /^the image data inflates to 94 bytes, fewer than the 95 its header implies$/);
  assert.ok(await sharpRefuses(short));
  await assertDamaged(
    pngOf(head, Buffer.concat([exact, Buffer.alloc(1)])),
    /^the image data inflates to more than the 95 bytes its header implies$/,
  );
  await assertDamaged(
    pngOf(head, scanlinesOf(6, 18, 13)),
    /^the image data inflates to more than the 95 bytes its header implies$/,
  );
  // Adam7: 6x5 has passes of 1x1, 1x1, 2x1, 1x2, 3x1, 3x3 and 6x2 pixels (RGB, 3 bytes each)
  const passes = [
    [1, 1],
    [1, 1],
    [2, 1],
    [1, 2],
    [3, 1],
    [3, 3],
    [6, 2],
  ];
  const interlacedSize = passes.reduce((sum, [w, h]) => sum + (h as number) * (1 + (w as number) * 3), 0);
  const interlaced = ihdr(6, 5, 8, 2, 1);
  assert.equal(checkPng(pngOf(interlaced, Buffer.alloc(interlacedSize)), LIMITS).kind, 'valid');
  await assertDamaged(pngOf(interlaced, Buffer.alloc(interlacedSize - 1)), /fewer than the 101 its header implies/);
  await assertDamaged(pngOf(interlaced, Buffer.alloc(interlacedSize + 1)), /more than the 101 bytes/);
  // a 1x1 image has only the first Adam7 pass
  assert.equal(checkPng(pngOf(ihdr(1, 1, 8, 0, 1), Buffer.alloc(2)), LIMITS).kind, 'valid');
});

test('a scanline filter type over 4 is a 422 naming the scanline', async () => {
  const head = ihdr(4, 3, 8, 0);
  const scanlines = scanlinesOf(3, 4, 14);
  scanlines[2 * 5] = 5;
  const bad = pngOf(head, scanlines);
  await assertDamaged(bad, /^scanline 2 has filter type 5, not 0 to 4$/);
  assert.ok(await sharpRefuses(bad));
  // 4x4 grey, Adam7: passes 1 (1x1), 4 (1x1), 5 (2x1), 6 (2x2) and 7 (4x2); passes 2 and 3 are
  // empty. The last row of pass 7 is the last 5 bytes
  const interlaced = Buffer.alloc(2 + 2 + 3 + 2 * 3 + 2 * 5);
  interlaced[interlaced.length - 5] = 200;
  await assertDamaged(pngOf(ihdr(4, 4, 8, 0, 1), interlaced), /^scanline 1 of interlace pass 7 has filter type 200/);
});

test('a chunk structure decoders cannot use is a 422 saying what is wrong', async () => {
  const png = encodePng({ width: 5, height: 4, channels: 1, pixels: pattern(15, 20) });
  const chunks = chunksOf(png);
  const [head, idat] = chunks as [Chunk, Chunk];
  const palette = await noise(5, 4, 3, 16).png({ palette: true }).toBuffer();
  const paletted = chunksOf(palette);
  const withoutPlte = paletted.filter((chunk) => chunk.type !== 'PLTE' && chunk.type !== 'tRNS');
  const plte = paletted.find((chunk) => chunk.type === 'PLTE') as Chunk;
  const text: Chunk = { type: 'tEXt', data: Buffer.from('Comment\0hello') };
  const half = Math.floor(idat.data.length / 2);
  const cases: [string, Buffer, RegExp, boolean][] = [
    // [what, file, reason, whether sharp refuses it too]
    ['missing IEND', assemble([head, idat]), /ends after \d+ bytes without an IEND chunk/, false],
    ['missing IEND, a chunk after IDAT', assemble([head, idat, text]), /without an IEND chunk/, false],
    ['data in IEND', assemble([head, idat, { type: 'IEND', data: Buffer.from([0]) }]), /IEND chunk has 1 bytes/, false],
    ['missing PLTE', assemble(withoutPlte), /indexed-colour image has no PLTE chunk/, true],
    [
      'PLTE after IDAT',
      assemble([...withoutPlte.slice(0, -1), plte, IEND]),
      /indexed-colour image has no PLTE chunk before its image data/,
      true,
    ],
    ['two PLTE chunks', insertAfter(palette, 'PLTE', plte), /second PLTE chunk/, true],
    [
      'PLTE of 8 bytes',
      insertAfter(assemble(withoutPlte), 'IHDR', { type: 'PLTE', data: Buffer.alloc(8) }),
      /PLTE chunk is 8 bytes long/,
      true,
    ],
    [
      'PLTE of 0 bytes',
      insertAfter(assemble(withoutPlte), 'IHDR', { type: 'PLTE', data: Buffer.alloc(0) }),
      /PLTE chunk is 0 bytes long/,
      true,
    ],
    [
      'PLTE of 257 entries',
      insertAfter(assemble(withoutPlte), 'IHDR', { type: 'PLTE', data: Buffer.alloc(771) }),
      /771 bytes long/,
      true,
    ],
    [
      'IDAT chunks apart',
      assemble([
        head,
        { type: 'IDAT', data: idat.data.subarray(0, half) },
        text,
        { type: 'IDAT', data: idat.data.subarray(half) },
        IEND,
      ]),
      /IDAT chunks are not consecutive/,
      true,
    ],
    ['no IDAT', assemble([head, IEND]), /no IDAT chunk/, true],
    ['second IHDR', assemble([head, head, idat, IEND]), /second IHDR/, true],
    [
      'unknown critical chunk',
      assemble([head, { type: 'RUSt', data: Buffer.alloc(1) }, idat, IEND]),
      /"RUSt" is critical/,
      true,
    ],
    [
      'invalid chunk name',
      assemble([head, { type: 'ab1d', data: Buffer.alloc(1) }, idat, IEND]),
      /type "ab1d", not a valid chunk name/,
      true,
    ],
    [
      'reserved bit set',
      assemble([head, { type: 'abcd', data: Buffer.alloc(1) }, idat, IEND]),
      /type "abcd", not a valid chunk name/,
      true,
    ],
    [
      'a chunk claiming 2^31 bytes',
      Buffer.concat([
        SIGNATURE,
        chunkBytes(head),
        Buffer.from([0x80, 0, 0, 0]),
        Buffer.from('tEXt'),
        chunkBytes(idat),
        chunkBytes(IEND),
      ]),
      /tEXt chunk claims 2147483648 bytes/,
      true,
    ],
    [
      'a chunk claiming more bytes than the file has',
      Buffer.concat([
        SIGNATURE,
        chunkBytes(head),
        Buffer.from([0, 1, 0, 0]),
        Buffer.from('tEXt'),
        chunkBytes(idat),
        chunkBytes(IEND),
      ]),
      /file ends inside the tEXt chunk/,
      true,
    ],
    [
      'bad CRC on an ancillary chunk',
      Buffer.concat([SIGNATURE, chunkBytes(head), chunkBytes(text, 0), chunkBytes(idat), chunkBytes(IEND)]),
      /tEXt chunk's CRC/,
      false,
    ],
    [
      'bad CRC on IEND',
      Buffer.concat([SIGNATURE, chunkBytes(head), chunkBytes(idat), chunkBytes(IEND, 0)]),
      /IEND chunk's CRC/,
      false,
    ],
    [
      'bad CRC on PLTE',
      Buffer.concat([SIGNATURE, ...paletted.map((chunk) => chunkBytes(chunk, chunk.type === 'PLTE' ? 0 : undefined))]),
      /PLTE chunk's CRC/,
      true,
    ],
  ];
  for (const [what, bad, reason, sharpToo] of cases) {
    await assertDamaged(bad, reason);
    assert.equal(await sharpRefuses(bad), sharpToo, `sharp ${sharpToo ? 'refuses' : 'accepts'}: ${what}`);
  }
});

test('a zlib bomb is refused after inflating no more than its header’s size', async () => {
  // 16x16 grey needs 16 x 17 = 272 bytes; this IDAT inflates to 256 MiB of zeros
  const png = assemble([ihdr(16, 16, 8, 0), { type: 'IDAT', data: await deflateZeros(256) }, IEND]);
  assert.ok(png.length < 512 * 1024, `the bomb is small (${png.length} bytes)`);
  const before = process.resourceUsage().maxRSS;
  await assertDamaged(png, /^the image data inflates to more than the 272 bytes its header implies$/);
  const grown = (process.resourceUsage().maxRSS - before) / 1024;
  assert.ok(grown < 32, `peak memory grew by ${grown.toFixed(1)} MiB, not the 256 MiB the data inflates to`);
});

// A zlib stream of `mebibytes` MiB of zeros, fed to deflate a MiB at a time
async function deflateZeros(mebibytes: number): Promise<Buffer> {
  const zeros = Buffer.alloc(1024 * 1024);
  const deflate = createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (part: Buffer) => parts.push(part));
  const done = once(deflate, 'end');
  for (let i = 0; i < mebibytes; i++) if (!deflate.write(zeros)) await once(deflate, 'drain');
  deflate.end();
  await done;
  return Buffer.concat(parts);
}

test('a PNG over MAX_PIXELS is a 422 TOO_MANY_PIXELS before its data is looked at', async () => {
  // the IDAT is garbage: the size is refused first
  const png = assemble([ihdr(1001, 1000, 8, 0), { type: 'IDAT', data: Buffer.from('not zlib') }, IEND]);
  assert.deepEqual(checkPng(png, LIMITS), { kind: 'too-many-pixels', width: 1001, height: 1000 });
  const { statusCode, code, message } = await refusal(png);
  assert.equal(statusCode, 422);
  assert.equal(code, 'TOO_MANY_PIXELS');
  // the same words as sharp's refusal of the same file
  const sharpRefusal = (await decodeImage(png, MAX_PIXELS).catch((err: Error) => err)) as Error;
  assert.equal(
    sharpRefusal.message,
    'The image has more pixels than the limit of 1000000 (MAX_PIXELS); scale it down first',
  );
  assert.equal(message, sharpRefusal.message);
});

test('PNGs over the check’s size, and other formats, go to sharp', async () => {
  const large = await noise(257, 256, 3, 17).png().toBuffer();
  assert.deepEqual(checkPng(large, LIMITS), { kind: 'not-checked' });
  assert.deepEqual(await inspectImage(large, MAX_PIXELS), { format: 'png', width: 257, height: 256, channels: 3 });
  const jpeg = await noise(8, 8, 3, 18).jpeg().toBuffer();
  assert.deepEqual(checkPng(jpeg, LIMITS), { kind: 'not-checked' });
  assert.deepEqual(await inspectImage(jpeg, MAX_PIXELS), { format: 'jpeg', width: 8, height: 8, channels: 3 });
  // damage in a large PNG is still found, by sharp's decode
  const cut = large.subarray(0, large.length - 200);
  assert.equal(checkPng(cut, LIMITS).kind, 'not-checked');
  await assertDamaged(cut, /.+/);
});
