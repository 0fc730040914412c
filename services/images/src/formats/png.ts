import { crc32, deflateSync } from 'node:zlib';

/** Raw pixels to encode: row-major, channels interleaved, 8 bits per sample. */
export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const COLOUR_TYPE = { 1: 0, 3: 2 } as const; // greyscale, truecolour
const MAX_DIMENSION = 0x7fffffff; // the PNG limit for width and height

/**
 * Encodes grey or RGB pixels as a lossless 8-bit PNG. Written directly over zlib's deflate
 * because small images are dominated by per-call overhead: see decision 0043 for the figures.
 */
export function encodePng(image: RawImage): Buffer {
  const { width, height, channels, pixels } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Image size ${width}×${height} is not a positive whole number of pixels`);
  }
  if (width > MAX_DIMENSION || height > MAX_DIMENSION) {
    throw new RangeError(`Image size ${width}×${height} is larger than PNG allows`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`Channel count ${channels} is not 1 or 3`);
  const stride = width * channels;
  if (pixels.length !== stride * height) {
    throw new RangeError(
      `Pixel buffer has ${pixels.length} bytes, expected ${stride * height} for ${width}×${height}×${channels}`,
    );
  }

  // Every scanline starts with its filter type; 0 (none) costs nothing and, on images this
  // small, compresses within a few per cent of the adaptive filters
  const scanlines = Buffer.allocUnsafe((stride + 1) * height);
  // (copied byte by byte: a subarray per scanline would be an object per row of every image)
  for (let y = 0, from = 0, to = 0; y < height; y++) {
    scanlines[to++] = 0;
    for (const end = from + stride; from < end; ) scanlines[to++] = pixels[from++] as number;
  }
  // A small output chunk spares tiny images zlib's default 16 KiB output buffer per call
  const idat = deflateSync(scanlines, { chunkSize: Math.min(16 * 1024, Math.max(1024, scanlines.length)) });

  const out = Buffer.allocUnsafe(SIGNATURE.length + 12 + 13 + 12 + idat.length + 12);
  SIGNATURE.copy(out, 0);
  let at = SIGNATURE.length;
  at = beginChunk(out, at, 'IHDR', 13);
  out.writeUInt32BE(width, at);
  out.writeUInt32BE(height, at + 4);
  out[at + 8] = 8; // bit depth
  out[at + 9] = COLOUR_TYPE[channels];
  out[at + 10] = 0; // deflate
  out[at + 11] = 0; // adaptive filtering, per scanline
  out[at + 12] = 0; // no interlace
  at = endChunk(out, at + 13, 13);
  at = beginChunk(out, at, 'IDAT', idat.length);
  idat.copy(out, at);
  at = endChunk(out, at + idat.length, idat.length);
  at = beginChunk(out, at, 'IEND', 0);
  endChunk(out, at, 0);
  return out;
}

function beginChunk(out: Buffer, at: number, type: string, length: number): number {
  out.writeUInt32BE(length, at);
  out.write(type, at + 4, 'latin1');
  return at + 8;
}

// The CRC covers the chunk type and data, not the length
function endChunk(out: Buffer, at: number, length: number): number {
  out.writeUInt32BE(crc32(out.subarray(at - length - 4, at)), at);
  return at + 4;
}
