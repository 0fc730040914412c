import { inflateSync } from 'node:zlib';
import type { Grey } from './canonical.ts';

/** At most this many pixels on the long side are read; a photo's near-duplicates show at that size. */
export const WORKING_SIDE = 128;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Channels per PNG colour type, for the types read here (grey, RGB, grey + alpha, RGBA). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** The grey of an sRGB pixel, alpha flattened onto white: Rec. 709 weights, as every path here uses. */
function greyOf(r: number, g: number, b: number, alpha: number): number {
  const y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return alpha === 255 ? y : (y * alpha + 255 * (255 - alpha)) / 255;
}

/** Interleaved 8-bit samples (1 to 4 channels: grey, grey + alpha, RGB, RGBA) as a Grey picture. */
export function greyFromSamples(data: Uint8Array, width: number, height: number, channels: number): Grey {
  const pixels = new Float32Array(width * height);
  for (let i = 0; i < pixels.length; i++) {
    const at = i * channels;
    const first = data[at] as number;
    switch (channels) {
      case 1:
        pixels[i] = first;
        break;
      case 2:
        pixels[i] = greyOf(first, first, first, data[at + 1] as number);
        break;
      case 3:
        pixels[i] = greyOf(first, data[at + 1] as number, data[at + 2] as number, 255);
        break;
      default:
        pixels[i] = greyOf(first, data[at + 1] as number, data[at + 2] as number, data[at + 3] as number);
    }
  }
  return { width, height, pixels };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * A small PNG decoded here, without sharp: 8-bit grey, RGB, grey + alpha or RGBA, not interlaced,
 * at most WORKING_SIDE on each side, with no eXIf orientation. Undefined for any other PNG, which
 * sharp decodes instead. For an MNIST-size image sharp's per-call overhead is most of the work
 * (decision 0112). Throws for a PNG whose data is damaged.
 */
export function decodeSmallPng(bytes: Buffer): Grey | undefined {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return undefined;
  if (bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  const [depth, colourType, , , interlace] = bytes.subarray(24, 29);
  const channels = CHANNELS[colourType as number];
  if (depth !== 8 || interlace !== 0 || channels === undefined) return undefined;
  if (width === 0 || height === 0 || width > WORKING_SIDE || height > WORKING_SIDE) return undefined;
  const parts: Buffer[] = [];
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    if (type === 'eXIf') return undefined;
    if (type === 'IDAT') parts.push(bytes.subarray(at + 8, at + 8 + length));
    if (type === 'IEND') break;
    at += 12 + length;
  }
  const stride = width * channels;
  const raw = inflateSync(Buffer.concat(parts), { maxOutputLength: (stride + 1) * height });
  if (raw.length !== (stride + 1) * height)
    throw new Error(`The PNG's image data is ${raw.length} bytes, not ${(stride + 1) * height}`);
  const data = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] as number;
    const source = y * (stride + 1) + 1;
    const row = y * stride;
    for (let x = 0; x < stride; x++) {
      const value = raw[source + x] as number;
      const left = x >= channels ? (data[row + x - channels] as number) : 0;
      const up = y > 0 ? (data[row - stride + x] as number) : 0;
      const upLeft = y > 0 && x >= channels ? (data[row - stride + x - channels] as number) : 0;
      let predicted: number;
      switch (filter) {
        case 0:
          predicted = 0;
          break;
        case 1:
          predicted = left;
          break;
        case 2:
          predicted = up;
          break;
        case 3:
          predicted = (left + up) >> 1;
          break;
        case 4:
          predicted = paeth(left, up, upLeft);
          break;
        default:
          throw new Error(`The PNG has an unknown filter type ${filter} on row ${y}`);
      }
      data[row + x] = (value + predicted) & 0xff;
    }
  }
  return greyFromSamples(data, width, height, channels);
}

/**
 * Decodes an image file's bytes into a small greyscale picture: a small PNG here, anything else
 * by sharp (at most maxPixels, EXIF orientation applied, alpha flattened onto white, shrunk to at
 * most WORKING_SIDE on the long side with Lanczos from the full decode). Throws for data neither
 * can decode.
 */
export async function decodeGrey(bytes: Buffer, maxPixels: number): Promise<Grey> {
  const small = decodeSmallPng(bytes);
  if (small) return small;
  // loaded on first use: a worker that only sees small PNGs never maps libvips (tens of MB of RSS)
  const { default: sharp } = await import('sharp');
  const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels })
    .rotate()
    .flatten({ background: '#ffffff' })
    // shrink-on-load decodes JPEG and WebP at a crude fraction of their size first; a copy saved in
    // another format or size would then differ more than the picture does
    .resize(WORKING_SIDE, WORKING_SIDE, { fit: 'inside', withoutEnlargement: true, fastShrinkOnLoad: false })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  return greyFromSamples(data, info.width, info.height, info.channels);
}
