import { readFile } from 'node:fs/promises';
import { httpError } from '@berth/service-kit';
import sharp, { type OutputInfo } from 'sharp';
import { decoding } from './decoding.ts';
import type { Store } from './storage/store.ts';

/**
 * WebP thumbnails, made on first request and kept on the volume next to the originals (keyed by
 * content hash and size, so images sharing content share thumbnails). Concurrent requests for
 * the same one wait for a single encode, which takes its turn in the process's decode queue.
 */
export class Thumbnails {
  readonly #store: Store;
  readonly #maxPixels: number;
  readonly #onDemandPixels: number;
  readonly #making = new Map<string, Promise<Buffer>>();
  /** Thumbnails of large images being made in the background, by path. */
  readonly #background = new Map<string, Promise<unknown>>();

  /**
   * onDemandPixels: the largest image whose thumbnail a request waits for. A larger one's is made in
   * the background, behind requests in the decode queue, and the request answers 409 until it is
   * on the volume.
   */
  constructor(store: Store, maxPixels: number, options: { onDemandPixels?: number } = {}) {
    this.#store = store;
    this.#maxPixels = maxPixels;
    this.#onDemandPixels = options.onDemandPixels ?? Number.POSITIVE_INFINITY;
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

  /** Resolves when no background thumbnail is being made; for tests and shutdown. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#background.values()]);
  }

  async #make(sha256: string, size: number, path: string): Promise<Buffer> {
    if (!(await this.#store.has(sha256))) {
      throw Object.assign(new Error(`The file ${sha256} is missing`), { code: 'ENOENT' });
    }
    if (Number.isFinite(this.#onDemandPixels)) {
      // the header alone: cheap, and it says what the encode would cost
      const { width = 0, height = 0 } = await sharp(this.#store.path(sha256)).metadata();
      if (width * height > this.#onDemandPixels) {
        if (!this.#background.has(path)) {
          const made = this.#makeFile(sha256, size, path, 'background')
            .catch(() => {})
            .finally(() => this.#background.delete(path));
          this.#background.set(path, made);
        }
        throw httpError(
          409,
          'THUMBNAIL_NOT_READY',
          `The image is ${width}x${height}, larger than ${this.#onDemandPixels} pixels (THUMBNAIL_ON_DEMAND_PIXELS): its thumbnail is being made in the background, not while you wait; retry in a few seconds`,
        );
      }
    }
    return this.#makeFile(sha256, size, path, 'request');
  }

  async #makeFile(sha256: string, size: number, path: string, kind: 'request' | 'background'): Promise<Buffer> {
    const { data } = await this.#encode(sha256, size, kind);
    await this.#store.putFiles([{ path, bytes: data }]);
    return data;
  }

  #encode(sha256: string, size: number, kind: 'request' | 'background'): Promise<{ data: Buffer; info: OutputInfo }> {
    return decoding.run(
      () =>
        sharp(this.#store.path(sha256), { limitInputPixels: this.#maxPixels })
          .rotate()
          .resize(size, size, { fit: 'inside', withoutEnlargement: true })
          .webp({ quality: 80 })
          .toBuffer({ resolveWithObject: true }),
      kind,
    );
  }
}
