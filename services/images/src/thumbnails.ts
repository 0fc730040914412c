import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { type Store, TEMP_PREFIX } from './storage/store.ts';

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
    const bytes = await sharp(this.#store.path(sha256), { limitInputPixels: this.#maxPixels })
      .rotate()
      .resize(size, size, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 80 })
      .toBuffer();
    // written like the originals (temp name, then rename) so no reader meets half a thumbnail
    await mkdir(dirname(path), { recursive: true });
    const temp = `${dirname(path)}/${TEMP_PREFIX}${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await writeFile(temp, bytes, { flush: true });
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return bytes;
  }
}
