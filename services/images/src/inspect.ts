import { HttpError, httpError } from '@berth/service-kit';
import sharp, { type Metadata } from 'sharp';
import type { Format } from './db/images.ts';
import { decodedBytes, decodesTooLarge, decoding } from './decoding.ts';
import { checkPng, PngDamage } from './formats/png-check.ts';

// libvips' operation cache keeps decoded images around for reuse; this service decodes each
// image once, so the cache would only grow the heap
sharp.cache(false);

/** What an image is, as read from its bytes. */
export interface ImageInfo {
  format: Format;
  width: number;
  height: number;
  channels: number;
}

/** Images up to this many pixels are decoded into memory at once; larger ones are streamed through. */
const IN_MEMORY_PIXELS = 4_000_000;

/**
 * PNGs in memory up to this many pixels are checked over node:zlib instead of decoded by sharp,
 * whose fixed cost per call dominates below it (decision 0096).
 */
export const CHECKED_PNG_PIXELS = 256 * 256;

const NAMES: Record<Format, string> = {
  jpeg: 'JPEG',
  png: 'PNG',
  webp: 'WebP',
  gif: 'GIF',
  tiff: 'TIFF',
  avif: 'AVIF',
};

/** The formats accepted, in words, for messages. */
export const FORMAT_LIST = Object.values(NAMES).join(', ');

function unsupported(found?: string) {
  const what = found ? `${found} is not one of the formats stored here` : 'The content is not an image';
  return httpError(415, 'UNSUPPORTED_IMAGE', `${what}; send ${FORMAT_LIST}`);
}

function tooManyPixels(size: { width: number; height: number } | undefined, limit: number) {
  const what = size
    ? `The image is ${size.width}x${size.height} (${size.width * size.height} pixels), more than`
    : 'The image has more pixels than';
  return httpError(422, 'TOO_MANY_PIXELS', `${what} the limit of ${limit} (MAX_PIXELS); scale it down first`);
}

/** libvips' complaint in one line: repeated lines dropped, the generic prefix removed. */
function reason(err: unknown): string {
  const lines = (err as Error).message
    .replace(/^Input (file|buffer) has corrupt header: /, '')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  return [...new Set(lines)].slice(0, 3).join('; ');
}

function formatOf(metadata: Metadata): Format | undefined {
  switch (metadata.format) {
    case 'jpeg':
    case 'png':
    case 'webp':
    case 'gif':
    case 'tiff':
      return metadata.format;
    case 'heif':
      // AVIF is HEIF with AV1 inside; HEIC (HEVC inside) is not decoded by this build
      return metadata.compression === 'av1' ? 'avif' : undefined;
    default:
      return undefined;
  }
}

/**
 * Reads an image's format and size and checks every pixel is there (see decodeImage), refusing
 * what is not a storable image with 415 or 422. Small PNGs in memory are checked chunk by chunk
 * over node:zlib (formats/png-check.ts), with the same answers at a fraction of the cost.
 */
export async function inspectImage(
  input: string | Buffer,
  maxPixels: number,
  kind: 'request' | 'background' = 'background',
): Promise<ImageInfo> {
  if (typeof input !== 'string') {
    const checked = checkSmallPng(input, maxPixels);
    if (checked) return checked;
  }
  return decodeImage(input, maxPixels, kind);
}

/**
 * Reads an image's format and size from its header, refuses what is not one of the stored formats
 * (415) or is over the pixel limit (422), then decodes every pixel so truncated or damaged bytes
 * are refused (422) before anything is stored. sharp's own pixel limit stays on for both steps,
 * so a header that lies about its size cannot make the decoder allocate more. An image whose
 * pixels would take more than MAX_DECODED_BYTES is refused from its header (422); the decode
 * itself waits its turn in the process's decode queue and has DECODE_TIMEOUT_MS.
 */
export async function decodeImage(
  input: string | Buffer,
  maxPixels: number,
  kind: 'request' | 'background' = 'background',
): Promise<ImageInfo> {
  let metadata: Metadata;
  try {
    metadata = await sharp(input, { limitInputPixels: maxPixels }).metadata();
  } catch (err) {
    const message = (err as Error).message;
    if (/exceeds pixel limit/i.test(message)) throw tooManyPixels(undefined, maxPixels);
    if (/unsupported image format/i.test(message)) throw unsupported();
    throw httpError(
      422,
      'CORRUPT_IMAGE',
      `The image header could not be read (${reason(err)}); the file looks damaged`,
    );
  }
  const format = formatOf(metadata);
  if (!format) throw unsupported(metadata.format ? metadata.format.toUpperCase() : undefined);
  const width = metadata.width ?? 0;
  const height = metadata.height ?? 0;
  if (width * height > maxPixels) throw tooManyPixels({ width, height }, maxPixels);
  const channels = metadata.channels ?? 0;
  const limit = decoding.settings.maxDecodedBytes;
  if (decodedBytes(width, height, channels, metadata.depth) > limit) {
    throw decodesTooLarge({ width, height, channels, depth: metadata.depth }, limit);
  }
  try {
    await decoding.run(async () => {
      const decoder = sharp(input, { limitInputPixels: maxPixels, sequentialRead: true });
      // stats() pulls every pixel through without keeping the image; for small images a raw
      // decode into memory is several times cheaper per call
      if (width * height <= IN_MEMORY_PIXELS) await decoder.raw().toBuffer();
      else await decoder.stats();
    }, kind);
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw httpError(
      422,
      'CORRUPT_IMAGE',
      `The ${NAMES[format]} image could not be decoded (${reason(err)}); the file looks damaged or truncated`,
    );
  }
  return { format, width, height, channels };
}

/** A small PNG checked without sharp, or undefined when it is not one and must be decoded. */
function checkSmallPng(input: Buffer, maxPixels: number): ImageInfo | undefined {
  try {
    const result = checkPng(input, { maxPixels, checkPixels: CHECKED_PNG_PIXELS });
    // worded as sharp's refusal is, which comes before the size is known
    if (result.kind === 'too-many-pixels') throw tooManyPixels(undefined, maxPixels);
    if (result.kind === 'not-checked') return undefined;
    return { format: 'png', width: result.width, height: result.height, channels: result.channels };
  } catch (err) {
    if (!(err instanceof PngDamage)) throw err;
    if (err.part === 'header') {
      throw httpError(
        422,
        'CORRUPT_IMAGE',
        `The image header could not be read (${err.message}); the file looks damaged`,
      );
    }
    throw httpError(
      422,
      'CORRUPT_IMAGE',
      `The PNG image could not be decoded (${err.message}); the file looks damaged or truncated`,
    );
  }
}
