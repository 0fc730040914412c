import { readFile } from 'node:fs/promises';
import sharp, { type OutputInfo } from 'sharp';
import type { Store } from './storage/store.ts';

/**
 * WebP thumbnails, made on first request and kept on the volume next to the originals (keyed by
 * content hash and size, so images sharing content share thumbnails). Concurrent requests for
 * the same one wait for a single encode.
 */
export class Thumbnails {
  readonly #store: Store;
  readonly #maxPixels: number;
  readonly #making = new Map<string, Promise<Buffer>>();

  constructor(store: Store, maxPixels: number) {
    this.#store = store;
    this.#maxPixels = maxPixels;
  }

  /** The thumbnail's bytes, made now if it is not on the volume yet. */
  async get(sha256: string, size: number): Promise<Buffer> {
    const path = this.#store.thumbnailPath(sha256, size);
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let making = this.#making.get(path);
    if (!making) {
      making = this.#make(sha256, size, path).finally(() => this.#making.delete(path));
      this.#making.set(path, making);
    }
    return making;
  }

  async #make(sha256: string, size: number, path: string): Promise<Buffer> {
    if (!(await this.#store.has(sha256))) {
      throw Object.assign(new Error(`The file ${sha256} is missing`), { code: 'ENOENT' });
    }
    const { data } = await this.#encode(sha256, size);
    await this.#store.putFiles([{ path, bytes: data }]);
    return data;
  }

  #encode(sha256: string, size: number): Promise<{ data: Buffer; info: OutputInfo }> {
    return sharp(this.#store.path(sha256), { limitInputPixels: this.#maxPixels })
      .rotate()
      .resize(size, size, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 80 })
      .toBuffer({ resolveWithObject: true });
  }
}
