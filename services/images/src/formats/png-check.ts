import { crc32, inflateSync } from 'node:zlib';

/** What a checked PNG is: its size and its channels as sharp's metadata() counts them. */
export interface PngFacts {
  width: number;
  height: number;
  channels: number;
}

/** The outcome of checkPng when the bytes were not refused. */
export type PngCheck =
  | ({ kind: 'valid' } & PngFacts)
  | { kind: 'too-many-pixels'; width: number; height: number }
  // not a PNG, or larger than the check takes on: the caller decodes it the full way
  | { kind: 'not-checked' };

/** Limits for checkPng: the service's pixel limit, and the largest image checked here rather than decoded. */
export interface PngCheckLimits {
  maxPixels: number;
  checkPixels: number;
}

/** A damaged PNG: `part` says whether the header (IHDR) or what follows it is at fault. */
export class PngDamage extends Error {
  readonly part: 'header' | 'data';

  constructor(part: 'header' | 'data', reason: string) {
    super(reason);
    this.name = 'PngDamage';
    this.part = part;
  }
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const MAX_LENGTH = 0x7fffffff; // chunk lengths, widths and heights are 31-bit in PNG

// Allowed bit depths per colour type, and samples per pixel
const DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16], // greyscale
  2: [8, 16], // truecolour
  3: [1, 2, 4, 8], // indexed
  4: [8, 16], // greyscale + alpha
  6: [8, 16], // truecolour + alpha
};
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

// Adam7 passes: x start, y start, x step, y step
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

interface Header {
  width: number;
  height: number;
  depth: number;
  colourType: number;
  interlaced: boolean;
}

/**
 * Checks a PNG as strictly as a full decode would, without decoding: every chunk's length and
 * CRC, the IHDR fields, the chunk order a decoder relies on, and the image data inflated to
 * exactly the size the header implies, with a valid filter type on every scanline. The inflate is
 * bounded, so a zlib bomb allocates no more than about twice that size. Written over node:zlib because a
 * small image's decode through sharp is dominated by per-call overhead; see decision 0096.
 * Throws PngDamage for a damaged file.
 */
export function checkPng(bytes: Uint8Array, limits: PngCheckLimits): PngCheck {
  if (bytes.length < SIGNATURE.length || SIGNATURE.some((byte, i) => bytes[i] !== byte)) {
    return { kind: 'not-checked' };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = readHeader(bytes, view);
  const pixels = header.width * header.height;
  if (pixels > limits.maxPixels) return { kind: 'too-many-pixels', width: header.width, height: header.height };
  if (pixels > limits.checkPixels) return { kind: 'not-checked' };

  let at = SIGNATURE.length + 25; // past IHDR
  let paletteEntries = 0;
  let transparency = false;
  const idat: Uint8Array[] = [];
  let idatDone = false; // an IDAT run has started and something else has followed it
  for (;;) {
    const chunk = readChunk(bytes, view, at);
    if (!chunk) {
      throw new PngDamage('data', `the file ends after ${bytes.length} bytes without an IEND chunk`);
    }
    const { type, data } = chunk;
    at = chunk.next;
    if (type === 'IDAT') {
      if (idatDone) throw new PngDamage('data', 'the IDAT chunks are not consecutive');
      if (header.colourType === 3 && paletteEntries === 0) {
        throw new PngDamage('data', 'an indexed-colour image has no PLTE chunk before its image data');
      }
      idat.push(data);
      continue;
    }
    if (idat.length > 0) idatDone = true;
    if (type === 'IEND') {
      if (data.length !== 0) throw new PngDamage('data', `the IEND chunk has ${data.length} bytes of data, not 0`);
      break;
    }
    if (type === 'IHDR') throw new PngDamage('data', 'there is a second IHDR chunk');
    if (type === 'PLTE') {
      if (paletteEntries > 0) throw new PngDamage('data', 'there is a second PLTE chunk');
      if (data.length === 0 || data.length > 768 || data.length % 3 !== 0) {
        throw new PngDamage('data', `the PLTE chunk is ${data.length} bytes long, not 3 to 768 in steps of 3`);
      }
      if (idat.length > 0) {
        // after the image data a palette is only a suggestion, which decoders skip
        if (header.colourType === 3) throw new PngDamage('data', 'the PLTE chunk comes after the image data');
        continue;
      }
      // a decoder uses no more entries than the bit depth can index
      const usable = header.colourType === 3 ? 2 ** header.depth : 256;
      paletteEntries = Math.min(data.length / 3, usable);
      continue;
    }
    if (type === 'tRNS') {
      // decoders ignore a tRNS chunk they cannot use rather than refuse the file
      if (idat.length === 0 && transparencyFits(header.colourType, data.length, paletteEntries)) transparency = true;
      continue;
    }
    if (isCritical(type)) throw new PngDamage('data', `the chunk type "${type}" is critical and not one PNG defines`);
  }
  if (idat.length === 0) throw new PngDamage('data', 'there is no IDAT chunk, so no image data');

  checkImageData(idat.length === 1 ? (idat[0] as Uint8Array) : Buffer.concat(idat), header);
  const samples = SAMPLES[header.colourType] as number;
  // sharp counts a palette as RGB, and a usable tRNS chunk as one more (alpha) channel
  const channels = (header.colourType === 3 ? 3 : samples) + (transparency ? 1 : 0);
  return { kind: 'valid', width: header.width, height: header.height, channels };
}

function readHeader(bytes: Uint8Array, view: DataView): Header {
  const chunk = readChunk(bytes, view, SIGNATURE.length);
  if (!chunk) throw new PngDamage('header', 'the file ends after the PNG signature, before the IHDR chunk');
  if (chunk.type !== 'IHDR') throw new PngDamage('header', `the first chunk is "${chunk.type}", not IHDR`);
  if (chunk.data.length !== 13) {
    throw new PngDamage('header', `the IHDR chunk is ${chunk.data.length} bytes long, not 13`);
  }
  const at = SIGNATURE.length + 8;
  const width = view.getUint32(at);
  const height = view.getUint32(at + 4);
  const depth = bytes[at + 8] as number;
  const colourType = bytes[at + 9] as number;
  const [compression, filter, interlace] = [bytes[at + 10], bytes[at + 11], bytes[at + 12]];
  if (width === 0 || height === 0 || width > MAX_LENGTH || height > MAX_LENGTH) {
    throw new PngDamage('header', `the IHDR chunk gives a size of ${width}x${height}`);
  }
  const depths = DEPTHS[colourType];
  if (!depths) throw new PngDamage('header', `the IHDR chunk gives colour type ${colourType}, not 0, 2, 3, 4 or 6`);
  if (!depths.includes(depth)) {
    throw new PngDamage(
      'header',
      `the IHDR chunk gives bit depth ${depth}, not allowed with colour type ${colourType}`,
    );
  }
  if (compression !== 0) throw new PngDamage('header', `the IHDR chunk gives compression method ${compression}, not 0`);
  if (filter !== 0) throw new PngDamage('header', `the IHDR chunk gives filter method ${filter}, not 0`);
  if (interlace !== 0 && interlace !== 1) {
    throw new PngDamage('header', `the IHDR chunk gives interlace method ${interlace}, not 0 or 1`);
  }
  return { width, height, depth, colourType, interlaced: interlace === 1 };
}

/** The chunk at `at`, its CRC checked; undefined when the file ends before it begins. */
function readChunk(bytes: Uint8Array, view: DataView, at: number) {
  if (at >= bytes.length) return undefined;
  const part = at === SIGNATURE.length ? 'header' : 'data';
  if (bytes.length - at < 8) throw new PngDamage(part, `the file ends inside a chunk header at byte ${at}`);
  const length = view.getUint32(at);
  const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
  if (!/^[A-Za-z]{2}[A-Z][A-Za-z]$/.test(type)) {
    throw new PngDamage(part, `the chunk at byte ${at} has type ${JSON.stringify(type)}, not a valid chunk name`);
  }
  if (length > MAX_LENGTH) throw new PngDamage(part, `the ${type} chunk claims ${length} bytes, more than PNG allows`);
  const end = at + 8 + length;
  if (end + 4 > bytes.length) {
    throw new PngDamage(part, `the file ends inside the ${type} chunk (${length} bytes of data from byte ${at + 8})`);
  }
  const stored = view.getUint32(end);
  const actual = crc32(bytes.subarray(at + 4, end));
  if (stored !== actual) {
    throw new PngDamage(part, `the ${type} chunk's CRC is ${hex(stored)}, but its bytes give ${hex(actual)}`);
  }
  return { type, data: bytes.subarray(at + 8, end), next: end + 4 };
}

function isCritical(type: string): boolean {
  return type.charCodeAt(0) < 0x61; // an upper-case first letter
}

// The tRNS lengths a decoder takes: one grey sample, one RGB triple, or up to one alpha per palette entry
function transparencyFits(colourType: number, length: number, paletteEntries: number): boolean {
  if (colourType === 0) return length === 2;
  if (colourType === 2) return length === 6;
  if (colourType === 3) return length >= 1 && length <= paletteEntries;
  return false;
}

/** Each scanline's length in bytes without its filter byte, for every pass that has pixels. */
function scanlines(header: Header): { pass: number; rows: number; stride: number }[] {
  const bitsPerPixel = (SAMPLES[header.colourType] as number) * header.depth;
  const stride = (width: number) => Math.ceil((width * bitsPerPixel) / 8);
  if (!header.interlaced) return [{ pass: 0, rows: header.height, stride: stride(header.width) }];
  const passes = [];
  for (const [index, [x0, y0, dx, dy]] of ADAM7.entries()) {
    const columns = header.width > x0 ? Math.ceil((header.width - x0) / dx) : 0;
    const rows = header.height > y0 ? Math.ceil((header.height - y0) / dy) : 0;
    if (columns > 0 && rows > 0) passes.push({ pass: index + 1, rows, stride: stride(columns) });
  }
  return passes;
}

function checkImageData(compressed: Uint8Array, header: Header) {
  const passes = scanlines(header);
  const expected = passes.reduce((sum, pass) => sum + pass.rows * (1 + pass.stride), 0);
  let data: Buffer;
  try {
    // one byte over the expected size is enough to know there is too much; the bound keeps a
    // zlib bomb from allocating more than about twice the expected size
    data = inflateSync(compressed, {
      maxOutputLength: expected + 1,
      chunkSize: Math.max(64, Math.min(expected + 1, 1024 * 1024)),
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooMuch(expected);
    throw new PngDamage('data', `the image data does not inflate: ${(err as Error).message}`);
  }
  if (data.length > expected) throw tooMuch(expected);
  if (data.length < expected) {
    throw new PngDamage(
      'data',
      `the image data inflates to ${data.length} bytes, fewer than the ${expected} its header implies`,
    );
  }
  let at = 0;
  for (const pass of passes) {
    for (let row = 0; row < pass.rows; row++, at += 1 + pass.stride) {
      const filter = data[at] as number;
      if (filter > 4) {
        const where = header.interlaced ? `scanline ${row} of interlace pass ${pass.pass}` : `scanline ${row}`;
        throw new PngDamage('data', `${where} has filter type ${filter}, not 0 to 4`);
      }
    }
  }
}

function tooMuch(expected: number) {
  return new PngDamage('data', `the image data inflates to more than the ${expected} bytes its header implies`);
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
