import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CONTENT_TYPES, type FileRef, type ImageReader } from '../db/images.ts';
import type { FileCache } from '../file-cache.ts';
import { etagMatches, parseRange } from '../range.ts';
import type { RefCache } from '../ref-cache.ts';
import { Binary, Errors, IdParams, NotModified, ThumbnailQuery } from '../schemas.ts';
import type { Store } from '../storage/store.ts';
import type { Thumbnails } from '../thumbnails.ts';

/** A response of image bytes in any stored format. */
function FileBytes(description: string) {
  return Binary(description, [...new Set(Object.values(CONTENT_TYPES))]);
}

/** Files up to this size are read whole and sent in one write; larger ones are streamed. */
const READ_WHOLE = 256 * 1024;

/** An id's bytes never change, so caches may keep them for a year without asking again. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

function notFound(id: string) {
  return httpError(404, 'IMAGE_NOT_FOUND', `Image "${id}" does not exist`);
}

function fileMissing(request: FastifyRequest, id: string, err: unknown) {
  return Object.assign(
    httpError(500, 'FILE_MISSING', `The stored file of image "${id}" is missing; quote request id ${request.id}`),
    { cause: err },
  );
}

async function readSmall(store: Store, cache: FileCache, sha256: string): Promise<Buffer> {
  const cached = cache.get(sha256);
  if (cached) return cached;
  const bytes = await readFile(store.path(sha256));
  cache.set(sha256, bytes);
  return bytes;
}

async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  store: Store,
  cache: FileCache,
  id: string,
  ref: FileRef,
) {
  const etag = `"${ref.sha256}"`;
  reply.header('etag', etag).header('cache-control', IMMUTABLE).header('accept-ranges', 'bytes');
  if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send();
  const ifRange = request.headers['if-range'];
  const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, ref.bytes) : undefined;
  const path = store.path(ref.sha256);
  if (range === 'unsatisfiable') {
    return reply
      .code(416)
      .header('content-range', `bytes */${ref.bytes}`)
      .send({
        statusCode: 416,
        code: 'RANGE_NOT_SATISFIABLE',
        error: 'Range Not Satisfiable',
        message: `Range "${request.headers.range}" lies outside the file's ${ref.bytes} bytes`,
      });
  }
  reply.type(CONTENT_TYPES[ref.format]);
  const start = range?.start ?? 0;
  const end = range?.end ?? ref.bytes - 1;
  if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${ref.bytes}`);
  try {
    if (ref.bytes <= READ_WHOLE) {
      const bytes = await readSmall(store, cache, ref.sha256);
      return reply.send(range ? bytes.subarray(start, end + 1) : bytes);
    }
    const stream = createReadStream(path, { start, end });
    // open errors surface here rather than halfway through a response
    await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
    return reply.header('content-length', end - start + 1).send(stream);
  } catch (err) {
    throw fileMissing(request, id, err);
  }
}

/** GET /images/:id/file and GET /images/:id/thumbnail. */
export function fileRoutes(
  app: FastifyInstance,
  images: ImageReader,
  store: Store,
  thumbnails: Thumbnails,
  cache: FileCache,
  refs: RefCache,
) {
  app.get<{ Params: { id: string } }>(
    '/images/:id/file',
    {
      schema: {
        summary: 'The image bytes: strong ETag from the content hash, Range requests, cached as immutable',
        params: IdParams,
        response: {
          200: FileBytes('The image bytes, in the format it was stored in'),
          206: FileBytes('The requested byte range of the image (Content-Range says which)'),
          304: NotModified,
          404: ErrorResponse,
          416: ErrorResponse,
          500: ErrorResponse,
          ...Errors,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id.toLowerCase();
      const remembered = refs.get(id);
      if (remembered) {
        try {
          return await sendFile(request, reply, store, cache, id, remembered);
        } catch (err) {
          // deleted through another replica and its file reclaimed: ask the database again
          if ((err as { code?: string }).code !== 'FILE_MISSING') throw err;
          refs.delete(id);
        }
      }
      const ref = await images.fileRef(id);
      if (!ref) throw notFound(id);
      refs.set(id, ref);
      return sendFile(request, reply, store, cache, id, ref);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { size: 64 | 128 | 256 } }>(
    '/images/:id/thumbnail',
    {
      schema: {
        summary: 'A WebP thumbnail that fits in size x size (64, 128 or 256), made once and kept',
        params: IdParams,
        querystring: ThumbnailQuery,
        response: {
          200: Binary('The thumbnail', ['image/webp']),
          304: NotModified,
          404: ErrorResponse,
          500: ErrorResponse,
          ...Errors,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id.toLowerCase();
      const { size } = request.query;
      const ref = await images.fileRef(id);
      if (!ref) throw notFound(id);
      const etag = `W/"${ref.sha256}-${size}"`;
      reply.header('etag', etag).header('cache-control', IMMUTABLE);
      if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send();
      let bytes: Buffer;
      try {
        bytes = await thumbnails.get(ref.sha256, size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw fileMissing(request, id, err);
        throw err;
      }
      return reply.type('image/webp').send(bytes);
    },
  );
}
