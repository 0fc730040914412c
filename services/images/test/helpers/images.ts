import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

/** A small image made by sharp: a solid colour, so different colours give different bytes. */
export async function solidImage(
  options: { width?: number; height?: number; color?: string; format?: 'png' | 'jpeg' | 'webp' | 'gif' } = {},
): Promise<Buffer> {
  const { width = 16, height = 12, color = '#3366cc', format = 'png' } = options;
  const image = sharp({ create: { width, height, channels: 3, background: color } });
  return image.toFormat(format).toBuffer();
}

/** A 128x128 JPEG of noise: most of its bytes are image data, so cutting it short damages pixels, not the header. */
export async function noisyJpeg(): Promise<Buffer> {
  const pixels = Buffer.alloc(128 * 128 * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return sharp(pixels, { raw: { width: 128, height: 128, channels: 3 } })
    .jpeg()
    .toBuffer();
}

/** A distinct PNG per n: its pixels spell n in binary. */
export async function numberedPng(n: number, size = 8): Promise<Buffer> {
  const pixels = Buffer.alloc(size * size);
  for (let i = 0; i < size * size; i++) pixels[i] = (n >> (i % 31)) & 1 ? 255 : (i * 7) % 64;
  return sharp(pixels, { raw: { width: size, height: size, channels: 1 } })
    .png()
    .toBuffer();
}

function crc32(bytes: Buffer): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A tiny PNG whose header claims width x height (e.g. 100000 x 100000) over a few bytes of
 * data: a decompression bomb as far as the header goes.
 */
export function claimingPng(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.alloc(64))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A multipart/form-data body built by hand, for exact control over parts. */
export function multipart(parts: { name: string; value: string | Buffer; filename?: string; type?: string }[]) {
  const boundary = `----berth${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.filename !== undefined) head += `; filename="${part.filename}"`;
    head += '\r\n';
    if (part.type) head += `Content-Type: ${part.type}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`), Buffer.from(part.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}
