// Builders for the test data: IDX and CIFAR-10 files, tar and zip archives, written by the tests.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { FormatSource, ImportItem } from '../../src/formats/types.ts';

/** A temporary directory and a way to remove it. */
export interface TempDir {
  path: string;
  /** Writes a file into the directory and returns its path. */
  write(name: string, bytes: Uint8Array): Promise<string>;
  remove(): Promise<void>;
}

/** Makes a fresh temporary directory for one test file. */
export async function tempDir(): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), 'berth-formats-'));
  return {
    path,
    async write(name, bytes) {
      const file = join(path, name);
      await writeFile(file, bytes);
      return file;
    },
    remove: () => rm(path, { recursive: true, force: true }),
  };
}

/** Deterministic bytes that differ by seed, so every test image is distinct. */
export function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

/** An IDX images file; `magic` and `count` override the header to make broken files. */
export function idxImages(
  rows: number,
  cols: number,
  images: readonly Uint8Array[],
  header: { magic?: number; count?: number } = {},
): Buffer {
  const out = Buffer.alloc(16 + images.length * rows * cols);
  out.writeUInt32BE(header.magic ?? 0x00000803, 0);
  out.writeUInt32BE(header.count ?? images.length, 4);
  out.writeUInt32BE(rows, 8);
  out.writeUInt32BE(cols, 12);
  images.forEach((image, i) => {
    out.set(image, 16 + i * rows * cols);
  });
  return out;
}

/** An IDX labels file; `magic` and `count` override the header. */
export function idxLabels(labels: readonly number[], header: { magic?: number; count?: number } = {}): Buffer {
  const out = Buffer.alloc(8 + labels.length);
  out.writeUInt32BE(header.magic ?? 0x00000801, 0);
  out.writeUInt32BE(header.count ?? labels.length, 4);
  out.set(labels, 8);
  return out;
}

/** Gzip, as the MNIST downloads come. */
export function gzip(bytes: Uint8Array): Buffer {
  return gzipSync(bytes);
}

/** A CIFAR-10 batch from interleaved RGB 32×32 images: label byte, then R, G and B planes. */
export function cifarBatch(records: readonly { label: number; rgb: Uint8Array }[]): Buffer {
  const out = Buffer.alloc(records.length * 3073);
  records.forEach((record, r) => {
    const at = r * 3073;
    out[at] = record.label;
    for (let i = 0; i < 1024; i++) {
      out[at + 1 + i] = record.rgb[i * 3] as number;
      out[at + 1 + 1024 + i] = record.rgb[i * 3 + 1] as number;
      out[at + 1 + 2048 + i] = record.rgb[i * 3 + 2] as number;
    }
  });
  return out;
}

/** A tar entry to pack: a file by default; `size` without data declares bytes that are all zero. */
export interface TarEntry {
  name: string;
  data?: Uint8Array;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  linkname?: string;
}

/** Packs entries into a tar (or tar.gz) file in memory. */
export async function makeTar(entries: readonly TarEntry[], options: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const data = type === 'file' ? Buffer.from(entry.data ?? new Uint8Array()) : undefined;
    await new Promise<void>((resolve, reject) => {
      const header = { name: entry.name, type, linkname: entry.linkname, mode: type === 'directory' ? 0o755 : 0o644 };
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (data) pack.entry(header, data, done);
      else pack.entry(header, done);
    });
  }
  pack.finalize();
  await done;
  const tarBytes = Buffer.concat(chunks);
  return options.gzip ? gzipSync(tarBytes) : tarBytes;
}

/** A zip entry to write; the overrides make broken or hostile archives. */
export interface ZipEntry {
  name: string;
  data?: Uint8Array;
  /** 8 deflate (default), 0 store, anything else an unsupported method. */
  method?: number;
  /** Unix mode (type and permission bits), stored as made on Unix. */
  unixMode?: number;
  /** Uncompressed size to declare instead of the real one. */
  declaredSize?: number;
  /** CRC-32 to declare instead of the real one. */
  crc?: number;
  /** Sets the traditional-encryption flag. */
  encrypted?: boolean;
}

/** Writes a minimal zip file (local headers, central directory, end record) in memory. */
export function makeZip(entries: readonly ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const data = Buffer.from(entry.data ?? new Uint8Array());
    const method = entry.method ?? 8;
    const stored = method === 8 ? deflateRawSync(data) : data;
    const crc = entry.crc ?? crc32(data);
    const size = entry.declaredSize ?? data.length;
    const flags = 0x0800 | (entry.encrypted ? 0x0001 : 0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(0, 10); // time and date
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, stored);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(entry.unixMode === undefined ? 20 : (3 << 8) | 30, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(0, 12);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(stored.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(entry.unixMode === undefined ? 0 : (entry.unixMode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** Reads a source to the end. */
export async function collect<T extends ImportItem>(source: FormatSource<T>, from?: number): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source.records(from === undefined ? {} : { from })) out.push(item);
  return out;
}

/** Reads a source until it fails and returns what came before and the error. */
export async function collectUntilError<T extends ImportItem>(
  source: FormatSource<T>,
): Promise<{ items: T[]; error: unknown }> {
  const items: T[] = [];
  try {
    for await (const item of source.records()) items.push(item);
  } catch (error) {
    return { items, error };
  }
  throw new Error('expected the records to fail');
}
