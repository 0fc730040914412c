import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ByteReader } from './byte-reader.ts';
import { type FileRef, FormatError } from './types.ts';

/** The name to show for a file: the client's name when it gave one. */
export function displayName(file: FileRef): string {
  return file.name ?? basename(file.path);
}

/** True when the bytes start with the gzip magic 1f 8b. */
export function isGzip(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** True for errors raised by zlib on corrupt or truncated compressed data. */
export function isZlibError(error: unknown): error is Error & { code: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/** Names the file and record a gzip failure happened at; a cut-off stream reads as truncation. */
export function gzipError(what: string, record: number, error: Error & { code: string }): FormatError {
  const where = record < 0 ? 'in its header' : `at record ${record}`;
  const reason =
    error.code === 'Z_BUF_ERROR'
      ? `${what} is truncated ${where} (the gzip stream ends early)`
      : `${what} is not valid gzip ${where}: ${error.message}`;
  return new FormatError(reason, { index: record < 0 ? undefined : record, cause: error });
}

/** The first `n` bytes of the file as stored, and its size. */
export async function readRawHead(path: string, n: number): Promise<{ head: Buffer; size: number }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(n, size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return { head: head.subarray(0, bytesRead), size };
  } finally {
    await handle.close();
  }
}

/**
 * The uncompressed size a gzip file's trailer states (modulo 4 GiB, last member only): good for
 * a progress total, never trusted for anything else.
 */
export async function readGzipSize(path: string, size: number): Promise<number | undefined> {
  if (size < 18) return undefined;
  const handle = await open(path, 'r');
  try {
    const tail = Buffer.alloc(4);
    await handle.read(tail, 0, 4, size - 4);
    return tail.readUInt32LE(0);
  } finally {
    await handle.close();
  }
}

/** A file opened for streaming: gunzipped on the fly when it starts with the gzip magic. */
export interface OpenedInput {
  stream: Readable;
  gzip: boolean;
  /** Size on disk (compressed size for gzip). */
  size: number;
}

/** Opens a plain or gzip file as a stream of its (decompressed) bytes. */
export async function openInput(path: string): Promise<OpenedInput> {
  const { head, size } = await readRawHead(path, 2);
  const file = createReadStream(path);
  if (!isGzip(head)) return { stream: file, gzip: false, size };
  // pipeline forwards a read error or a gzip error to the stream the reader iterates
  const stream = pipeline(file, createGunzip(), () => {});
  return { stream, gzip: true, size };
}

/** Up to `n` leading bytes of the file's content, decompressed when it is gzip. */
export async function readContentHead(path: string, n: number): Promise<{ head: Buffer; gzip: boolean; size: number }> {
  const input = await openInput(path);
  const reader = new ByteReader(input.stream);
  try {
    const head = Buffer.from(await reader.read(n));
    return { head, gzip: input.gzip, size: input.size };
  } finally {
    reader.close();
  }
}
