import { readFile } from 'node:fs/promises';
import { httpError } from '@berth/service-kit';
import sharp, { type OutputInfo } from 'sharp';
import { decoding } from './decoding.ts';
import { type Store, THUMBNAIL_SIZES } from './storage/store.ts';

/**
 * WebP thumbnails, made on first request and kept on the volume next to the originals (keyed by
 * content hash and size, so images sharing content share thumbnails). Concurrent requests for
 * the same one wait for a single encode.
 */
export class Thumbnails {
  readonly #store: Store;
  readonly #maxPixels: number;
  readonly #onDemandPixels: number;
  readonly #making = new Map<string, Promise<Buffer>>();

  /**
   * onDemandPixels: the largest image whose thumbnail a request may have made (the images-worker
   * makes every image's ahead of time); larger ones answer 409 until the worker has made it.
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

  /**
   * Makes every standard size of a thumbnail ahead of time (the images-worker's job), smallest
   * first, encoding each distinct picture once: thumbnails never enlarge, so once a size came out
   * smaller than its box, every larger size is that same picture (all three for an MNIST digit).
   */
  async makeAll(sha256: string): Promise<void> {
    const files: Array<{ path: string; bytes: Buffer }> = [];
    const sizes = [...THUMBNAIL_SIZES].sort((a, b) => a - b);
    for (let i = 0; i < sizes.length; i++) {
      const size = sizes[i] as number;
      const { data, info } = await this.#encode(sha256, size, 'background');
      const whole = Math.max(info.width, info.height) < size;
      for (const same of whole ? sizes.slice(i) : [size]) {
        files.push({ path: this.#store.thumbnailPath(sha256, same), bytes: data });
      }
      if (whole) break;
    }
    await this.#store.putFiles(files);
  }

  async #make(sha256: string, size: number, path: string): Promise<Buffer> {
    if (!(await this.#store.has(sha256))) {
      throw Object.assign(new Error(`The file ${sha256} is missing`), { code: 'ENOENT' });
    }
    if (Number.isFinite(this.#onDemandPixels)) {
      // the header alone: cheap, and it says what the encode would cost
      const { width = 0, height = 0 } = await sharp(this.#store.path(sha256)).metadata();
      if (width * height > this.#onDemandPixels) {
        throw httpError(
          409,
          'THUMBNAIL_NOT_READY',
          `The image is ${width}x${height}, larger than ${this.#onDemandPixels} pixels (THUMBNAIL_ON_DEMAND_PIXELS): its thumbnails are made by the images-worker after upload, not on request; retry in a few seconds`,
        );
      }
    }
    const { data } = await this.#encode(sha256, size, 'request');
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
