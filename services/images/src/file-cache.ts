/**
 * Small files' bytes kept in memory by content hash, least recently used out first. Content never
 * changes under its hash, so an entry can never be stale; it only saves the disk round trips that
 * dominate serving a small image.
 */
export class FileCache {
  readonly #entries = new Map<string, Buffer>();
  readonly #maxBytes: number;
  readonly #maxEntryBytes: number;
  #bytes = 0;

  constructor(maxBytes: number, maxEntryBytes = 256 * 1024) {
    this.#maxBytes = maxBytes;
    this.#maxEntryBytes = maxEntryBytes;
  }

  /** The bytes under this hash, if kept. */
  get(sha256: string): Buffer | undefined {
    const bytes = this.#entries.get(sha256);
    if (bytes) {
      // re-inserting moves it to the young end of the Map's order
      this.#entries.delete(sha256);
      this.#entries.set(sha256, bytes);
    }
    return bytes;
  }

  /** Keeps the bytes if they are small enough, evicting the oldest entries to make room. */
  set(sha256: string, bytes: Buffer): void {
    if (bytes.length > this.#maxEntryBytes || bytes.length > this.#maxBytes || this.#entries.has(sha256)) return;
    this.#entries.set(sha256, bytes);
    this.#bytes += bytes.length;
    for (const [key, value] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(key);
      this.#bytes -= value.length;
    }
  }
}
