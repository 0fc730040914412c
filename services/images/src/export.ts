import { readFile } from 'node:fs/promises';
import type { FastifyBaseLogger } from 'fastify';
import tar from 'tar-stream';
import { EXTENSIONS, type Image, type ImageReader } from './db/images.ts';
import type { Store } from './storage/store.ts';

/** The folder for images without a label, since ImageFolder needs one per image. */
export const UNLABELED = 'unlabeled';
/** Rows read per query while exporting. */
const PAGE = 500;
/** Files read ahead of the one being written, to overlap disk reads with the archive's writes. */
const READ_AHEAD = 8;

/** Where an image goes in the ImageFolder tree: `<split>/<label>/<id>.<ext>`, or `<label>/…` without a split. */
export function entryName(image: Image): string {
  const file = `${image.label ?? UNLABELED}/${image.id}.${EXTENSIONS[image.format]}`;
  return image.split ? `${image.split}/${file}` : file;
}

/**
 * Streams a data set as an ImageFolder tar, the reverse of an import. Rows are read a page at a
 * time in id order and each file goes into the archive as soon as the reader takes more, so
 * memory stays flat for any size. A file missing from the volume is left out and logged.
 * Destroying the returned stream (the client went away) stops the reading.
 */
export function exportDataset(images: ImageReader, store: Store, dataset: string, log: FastifyBaseLogger) {
  const pack = tar.pack();
  const add = (image: Image, bytes: Buffer) =>
    new Promise<void>((resolve, reject) => {
      // the callback fires once the archive has passed the bytes on: backpressure from the client
      pack.entry({ name: entryName(image), size: bytes.length, mtime: new Date(image.createdAt) }, bytes, (err) =>
        err ? reject(err) : resolve(),
      );
    });

  const run = async () => {
    let after: string | null = null;
    for (;;) {
      const page = await images.page(dataset, after, PAGE);
      if (page.length === 0) break;
      after = page.at(-1)?.id ?? null;
      const reads = page.map(() => undefined as Promise<Buffer | undefined> | undefined);
      const read = (i: number) => {
        const image = page[i];
        if (image && !reads[i]) {
          reads[i] = readFile(store.path(image.sha256)).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
            log.error({ image: image.id, sha256: image.sha256 }, 'export left out an image whose file is missing');
            return undefined;
          });
        }
        return reads[i];
      };
      for (let i = 0; i < page.length; i++) {
        for (let ahead = i; ahead < Math.min(page.length, i + READ_AHEAD); ahead++) read(ahead);
        const bytes = await read(i);
        reads[i] = undefined;
        if (pack.destroying) return;
        if (bytes) await add(page[i] as Image, bytes);
      }
      if (page.length < PAGE) break;
    }
    pack.finalize();
  };
  run().catch((err: Error) => {
    if (!pack.destroying) log.error({ err, dataset }, 'export failed partway; the archive is cut short');
    pack.destroy(err);
  });
  return pack;
}
