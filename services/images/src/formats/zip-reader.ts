import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import yauzl from 'yauzl';

const WINDOW = 64 * 1024;

type ReadCallback = (error: Error | null, bytesRead?: number) => void;

interface Window {
  start: number;
  bytes: Buffer;
}

/**
 * A yauzl reader over an open file that serves small reads from two 64 KiB read-ahead windows.
 * yauzl reads each central directory record (at the end of the file) and then the entry's local
 * header (near its data) with small reads; straight from the file that is two thread-pool round
 * trips per entry (about 3 s for a 60,000 entry zip). With one window kept on the directory and
 * one on the data, it is one round trip per few hundred entries.
 */
export class WindowedFileReader extends yauzl.RandomAccessReader {
  #handle: FileHandle;
  // Most recently used first
  #windows: Window[] = [];

  constructor(handle: FileHandle) {
    super();
    this.#handle = handle;
  }

  /** Reads like fs.read: calls back with the number of bytes read, fewer only at the end of the file. */
  override read(buffer: Buffer, offset: number, length: number, position: number, callback: ReadCallback): void {
    const hit = this.#windows.findIndex(
      (window) => position >= window.start && position + length <= window.start + window.bytes.length,
    );
    const window = this.#windows[hit];
    if (window) {
      window.bytes.copy(buffer, offset, position - window.start, position - window.start + length);
      if (hit > 0) this.#windows = [window, ...this.#windows.filter((other) => other !== window)];
      process.nextTick(callback, null, length);
      return;
    }
    if (length >= WINDOW) {
      this.#handle.read(buffer, offset, length, position).then(({ bytesRead }) => callback(null, bytesRead), callback);
      return;
    }
    const bytes = Buffer.allocUnsafe(WINDOW);
    this.#handle.read(bytes, 0, WINDOW, position).then(({ bytesRead }) => {
      this.#windows = [{ start: position, bytes: bytes.subarray(0, bytesRead) }, ...this.#windows.slice(0, 1)];
      callback(null, bytes.copy(buffer, offset, 0, Math.min(length, bytesRead)));
    }, callback);
  }

  /** Reads into the whole buffer from `position`; resolves with the bytes read, fewer only at the end of the file. */
  readAt(buffer: Buffer, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.read(buffer, 0, buffer.length, position, (error, bytesRead = 0) =>
        error ? reject(error) : resolve(bytesRead),
      );
    });
  }

  /** Streams bytes [start, end) through the windows, in chunks of at most 64 KiB: yauzl's openReadStream. */
  override _readStreamForRange(start: number, end: number): Readable {
    let position = start;
    const reader = this;
    return new Readable({
      read() {
        if (position >= end) {
          this.push(null);
          return;
        }
        const chunk = Buffer.allocUnsafe(Math.min(WINDOW, end - position));
        reader.read(chunk, 0, chunk.length, position, (error, bytesRead = 0) => {
          if (error) return this.destroy(error);
          // a short file ends the stream early; yauzl reports the missing bytes
          if (bytesRead === 0) return this.push(null);
          position += bytesRead;
          this.push(chunk.subarray(0, bytesRead));
        });
      },
    });
  }

  /** Closes the file once yauzl has no stream or read left on it. */
  override close(callback: (error: Error | null) => void): void {
    this.#handle.close().then(() => callback(null), callback);
  }
}
