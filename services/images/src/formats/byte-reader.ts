import type { Readable } from 'node:stream';

const EMPTY = Buffer.alloc(0);

/**
 * Reads exact byte counts from a stream, pulling one chunk at a time so the stream's own
 * backpressure bounds memory whatever the file size.
 */
export class ByteReader {
  #stream: Readable;
  #chunks: AsyncIterator<Buffer>;
  #buf: Buffer = EMPTY;
  #pos = 0;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(stream: Readable) {
    this.#stream = stream;
    this.#chunks = stream[Symbol.asyncIterator]();
  }

  /**
   * Up to `n` bytes: exactly `n` unless the input ends first. The result may share memory with
   * the stream's chunk, so copy it before the next read if it must be kept.
   */
  async read(n: number): Promise<Buffer> {
    const available = this.#buf.length - this.#pos;
    if (available >= n) {
      const out = this.#buf.subarray(this.#pos, this.#pos + n);
      this.#pos += n;
      this.offset += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    if (available > 0) filled = this.#buf.copy(out, 0, this.#pos);
    this.#buf = EMPTY;
    this.#pos = 0;
    while (filled < n) {
      const next = await this.#chunks.next();
      if (next.done) break;
      const chunk = next.value;
      const take = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, take);
      filled += take;
      if (take < chunk.length) {
        this.#buf = chunk;
        this.#pos = take;
      }
    }
    this.offset += filled;
    return filled === n ? out : out.subarray(0, filled);
  }

  /** True when no byte is left; reads ahead at most one chunk. */
  async atEnd(): Promise<boolean> {
    while (this.#pos >= this.#buf.length) {
      const next = await this.#chunks.next();
      if (next.done) return true;
      this.#buf = next.value;
      this.#pos = 0;
    }
    return false;
  }

  /** Stops reading and releases the file. */
  close(): void {
    this.#stream.destroy();
  }
}
