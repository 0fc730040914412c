import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ErrorResponse } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { Type } from 'typebox';
import { forEachLimit } from '../concurrency.ts';
import { CONTENT_TYPES } from '../db/images.ts';
import { type ThumbnailRef, thumbnailRefs } from '../db/thumbnail-refs.ts';
import { FileCache } from '../file-cache.ts';
import { etagMatches } from '../range.ts';
import { Errors, NotModified, ThumbnailQuery } from '../schemas.ts';
import type { Store } from '../storage/store.ts';
import type { Thumbnails } from '../thumbnails.ts';

/** Ids per batch: a gallery page, and a URL well inside the gateway's MAX_URL_BYTES (8 KiB by default). */
export const MAX_BATCH = 100;

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

/** GET /images/thumbnails query: the ids, comma-separated, and one size for all. */
const BatchQuery = Type.Object(
  {
    ids: Type.String({
      pattern: `^${UUID}(,${UUID}){0,${MAX_BATCH - 1}}$`,
      maxLength: MAX_BATCH * 37 - 1,
      description: `must be 1 to ${MAX_BATCH} image ids (UUIDs) separated by commas`,
    }),
    size: ThumbnailQuery.properties.size,
  },
  { additionalProperties: false },
);

/** The answer: each thumbnail found as base64, in the order asked, and the ids left out. */
const BatchResponse = Type.Object(
  {
    items: Type.Array(
      Type.Object({
        id: Type.String({ description: 'the image id, lower case' }),
        contentType: Type.String({
          description: 'image/webp, or image/png or image/jpeg for an image already no larger than the size asked for',
        }),
        data: Type.String({ description: 'the bytes, base64; a page shows them as data:<contentType>;base64,…' }),
      }),
    ),
    missing: Type.Array(Type.String(), {
      description:
        'ids with no image, or whose file cannot be read; GET /images/:id/thumbnail says which it is for each',
    }),
  },
  { description: 'The thumbnails of the ids asked for, each id once' },
);

/** Files read or made at once for one batch: enough to keep the disk and sharp's threads busy, not the whole page. */
const PARALLEL = 8;

/**
 * Thumbnails kept in memory for batches, by hash and size: a page of them is a hundred file reads
 * otherwise, which queue on libuv's thread pool behind any image being decoded or encoded.
 * 16 MiB holds some 20,000 MNIST-sized thumbnails or 3,000 of photos.
 */
const CACHE_BYTES = 16 * 1024 * 1024;

/**
 * An image no larger than the thumbnail box, stored as PNG or JPEG (which every browser shows) and
 * no bigger than this, is its own thumbnail: sent as it is, it costs no encode (about 4 ms of CPU
 * each) and no file. MNIST's 28 x 28 and CIFAR's 32 x 32 images are well under it.
 */
const AS_IS_BYTES = 8 * 1024;

/** Whether an image is sent as its own thumbnail at this size. */
function asIs(ref: ThumbnailRef, size: number): boolean {
  return (
    ref.width <= size &&
    ref.height <= size &&
    ref.bytes <= AS_IS_BYTES &&
    (ref.format === 'png' || ref.format === 'jpeg')
  );
}

/** A year: the ids' bytes never change, so neither does an answer that has every one of them. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * GET /images/thumbnails: the thumbnails of up to 100 images in one answer, so a gallery page is
 * one request rather than a hundred over the browser's six connections (and one count against the
 * gateway's rate limit instead of a hundred). The bytes come as base64 in JSON because a page shows
 * them as data: URLs, which the browser decodes in the page's own process; Blobs (from a multipart
 * answer) each cost a round trip to the browser process to make and another to load.
 */
export function thumbnailRoutes(app: FastifyInstance, pool: pg.Pool, store: Store, thumbnails: Thumbnails) {
  const cache = new FileCache(CACHE_BYTES);

  /** The thumbnail's bytes and type, from memory, the volume, or made now. */
  async function thumbnail(ref: ThumbnailRef, size: number): Promise<{ type: string; bytes: Buffer }> {
    const original = asIs(ref, size);
    const key = original ? ref.sha256 : `${ref.sha256}-${size}`;
    let bytes = cache.get(key);
    if (!bytes) {
      bytes = original ? await readFile(store.path(ref.sha256)) : await thumbnails.get(ref.sha256, size);
      cache.set(key, bytes);
    }
    return { type: original ? CONTENT_TYPES[ref.format] : 'image/webp', bytes };
  }
  app.get<{ Querystring: { ids: string; size: 64 | 128 | 256 } }>(
    '/images/thumbnails',
    {
      schema: {
        summary:
          'WebP thumbnails of up to 100 images (ids comma-separated) in one answer, base64 in JSON; ids without an image are listed as missing',
        querystring: BatchQuery,
        response: { 200: BatchResponse, 304: NotModified, 500: ErrorResponse, ...Errors },
      },
    },
    async (request, reply) => {
      const { size } = request.query;
      const ids = [...new Set(request.query.ids.toLowerCase().split(','))];
      const refs = await thumbnailRefs(pool, ids);
      const found = ids.filter((id) => refs.has(id));
      // the ids and their content say everything about the answer, so the tag needs no file read
      const digest = createHash('sha256').update(`${size}:${AS_IS_BYTES}`);
      for (const id of found) digest.update(`\n${id}:${refs.get(id)?.sha256}`);
      const etag = `W/"${digest.digest('base64url').slice(0, 32)}"`;
      const complete = found.length === ids.length;
      if (complete && etagMatches(request.headers['if-none-match'], etag)) {
        return reply.code(304).header('etag', etag).header('cache-control', IMMUTABLE).send();
      }

      const made = new Map<string, { type: string; bytes: Buffer }>();
      await forEachLimit(found, PARALLEL, async (id) => {
        try {
          made.set(id, await thumbnail(refs.get(id) as ThumbnailRef, size));
        } catch (err) {
          // one unreadable file must not cost the page its other thumbnails
          request.log.warn({ err, imageId: id }, 'thumbnail left out of a batch');
        }
      });
      const items: { id: string; contentType: string; data: string }[] = [];
      const missing: string[] = [];
      for (const id of ids) {
        const one = made.get(id);
        if (one) items.push({ id, contentType: one.type, data: one.bytes.toString('base64') });
        else missing.push(id);
      }
      if (missing.length === 0) reply.header('etag', etag).header('cache-control', IMMUTABLE);
      // something left out may be there next time (an upload still committing, a file restored)
      else reply.header('cache-control', 'no-cache');
      return { items, missing };
    },
  );
}
