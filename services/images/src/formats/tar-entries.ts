import { createReadStream } from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { ArchiveEntry, ArchiveLimits, EntryType } from './archive-entry.ts';
import { isZlibError } from './source.ts';
import { FormatError } from './types.ts';

const TYPES: Record<string, EntryType> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'directory',
  symlink: 'symlink',
  link: 'hardlink',
};

/**
 * Streams the entries of a tar or tar.gz file in order. Each entry must be read or left alone
 * before the next is asked for; one left alone is drained without being kept.
 */
export async function* tarEntries(
  path: string,
  name: string,
  gzip: boolean,
  limits: ArchiveLimits,
): AsyncGenerator<ArchiveEntry, void, undefined> {
  const file = createReadStream(path);
  const input: Readable = gzip ? pipeline(file, createGunzip(), () => {}) : file;
  const extract = tar.extract();
  input.on('error', (error) => extract.destroy(error));
  input.pipe(extract);
  let index = 0;
  let total = 0;
  try {
    for await (const stream of extract) {
      const header = stream.header;
      if (index >= limits.maxEntries) {
        throw new FormatError(`Archive "${name}" has more than ${limits.maxEntries} entries`);
      }
      const size = header.size ?? 0;
      total += size;
      if (total > limits.maxTotalBytes) {
        throw new FormatError(`Archive "${name}" holds more than ${limits.maxTotalBytes} bytes uncompressed`);
      }
      let consumed = false;
      yield {
        index: index++,
        path: header.name,
        type: (header.type && TYPES[header.type]) || 'special',
        size,
        read: async () => {
          consumed = true;
          const bytes = Buffer.allocUnsafe(size);
          let at = 0;
          try {
            // tar-stream hands out exactly the header's size, so the copy cannot overflow; a failure
            // here is the archive's (cut off, bad gzip) and ends the whole stream
            for await (const chunk of stream as AsyncIterable<Buffer>) at += chunk.copy(bytes, at);
          } catch (error) {
            throw corrupt(name, error);
          }
          return { ok: true, bytes: bytes.subarray(0, at) };
        },
      };
      // Unread entries are drained, not destroyed: destroying one would end the whole archive
      if (!consumed) stream.resume();
    }
  } catch (error) {
    throw corrupt(name, error);
  } finally {
    extract.destroy();
    input.destroy();
  }
}

function corrupt(name: string, error: unknown): unknown {
  if (error instanceof FormatError) return error;
  if (isZlibError(error)) {
    const how =
      error.code === 'Z_BUF_ERROR'
        ? 'is truncated (the gzip stream ends early)'
        : `is not valid gzip: ${error.message}`;
    return new FormatError(`Archive "${name}" ${how}`, { cause: error });
  }
  // File system errors are the service's problem, not the upload's
  if (error instanceof Error && 'syscall' in error) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new FormatError(`Archive "${name}" is not a readable tar file: ${explain(message)}`, { cause: error });
}

// tar-stream's messages, in words that fit after the archive's name
function explain(message: string): string {
  if (message.startsWith('Invalid tar header')) return 'an entry header is invalid';
  if (message === 'Unexpected end of data') return 'it ends in the middle of an entry';
  return message.charAt(0).toLowerCase() + message.slice(1).replace(/\.$/, '');
}
