import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

/** A deterministic pseudo-random byte source, so test data is the same on every run. */
export function bytesFrom(seed: number): (n: number) => Buffer {
  let state = seed >>> 0 || 1;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      out[i] = state & 0xff;
    }
    return out;
  };
}

/** An MNIST-style IDX pair of `count` random rows x cols images with labels 0-9, written to dir. */
export async function writeIdx(
  dir: string,
  options: { count: number; rows?: number; cols?: number; prefix?: string; gzip?: boolean; seed?: number },
): Promise<{ images: string; labels: string; pixels: Buffer; labelBytes: Buffer }> {
  const { count, rows = 28, cols = 28, prefix = 'train', gzip = false, seed = 1 } = options;
  const random = bytesFrom(seed);
  const pixels = random(count * rows * cols);
  const labelBytes = Buffer.from(random(count).map((b) => b % 10));
  const imagesHeader = Buffer.alloc(16);
  imagesHeader.writeUInt32BE(0x00000803, 0);
  imagesHeader.writeUInt32BE(count, 4);
  imagesHeader.writeUInt32BE(rows, 8);
  imagesHeader.writeUInt32BE(cols, 12);
  const labelsHeader = Buffer.alloc(8);
  labelsHeader.writeUInt32BE(0x00000801, 0);
  labelsHeader.writeUInt32BE(count, 4);
  const suffix = gzip ? '.gz' : '';
  const images = join(dir, `${prefix}-images-idx3-ubyte${suffix}`);
  const labels = join(dir, `${prefix}-labels-idx1-ubyte${suffix}`);
  const pack = (bytes: Buffer) => (gzip ? gzipSync(bytes) : bytes);
  await writeFile(images, pack(Buffer.concat([imagesHeader, pixels])));
  await writeFile(labels, pack(Buffer.concat([labelsHeader, labelBytes])));
  return { images, labels, pixels, labelBytes };
}

/** A CIFAR-10 binary batch of `count` random 32x32 RGB records with labels 0-9. */
export async function writeCifar(path: string, count: number, seed = 7): Promise<Buffer> {
  const random = bytesFrom(seed);
  const records: Buffer[] = [];
  for (let i = 0; i < count; i++) records.push(Buffer.concat([Buffer.from([i % 10]), random(3072)]));
  const bytes = Buffer.concat(records);
  await writeFile(path, bytes);
  return bytes;
}

/** A tar archive of the given entries (path to bytes); links and odd entries may be added by type. */
export async function tarOf(
  entries: { name: string; bytes?: Buffer; type?: 'file' | 'symlink' | 'directory'; linkname?: string }[],
): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk) => {
    chunks.push(chunk as Buffer);
  });
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const entry of entries) {
    await new Promise<void>((resolve, reject) => {
      const type = entry.type ?? 'file';
      const header = { name: entry.name, type, linkname: entry.linkname, size: entry.bytes?.length ?? 0 };
      const callback = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry(header, entry.bytes ?? Buffer.alloc(0), callback);
      else pack.entry(header, callback);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
