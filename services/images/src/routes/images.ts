import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { Type } from 'typebox';
import { decodeCursor, encodeCursor, queryKey } from '../cursor.ts';
import { deleteImage, type ImageReader, updateImage } from '../db/images.ts';
import { withTransaction } from '../db/transaction.ts';
import type { RefCache } from '../ref-cache.ts';
import {
  Errors,
  IdParams,
  Image,
  ImagePage,
  type ListInput,
  ListQuery,
  PatchBody,
  type PatchInput,
} from '../schemas.ts';
import { reclaimFiles } from '../storage/reclaim.ts';
import type { Store } from '../storage/store.ts';

function notFound(id: string) {
  return httpError(404, 'IMAGE_NOT_FOUND', `Image "${id}" does not exist`);
}

/** GET /images, GET /images/:id, PATCH /images/:id and DELETE /images/:id. */
export function imageRoutes(app: FastifyInstance, pool: pg.Pool, images: ImageReader, store: Store, refs: RefCache) {
  app.get<{ Querystring: ListInput }>(
    '/images',
    {
      schema: {
        summary: 'List images oldest first, filtered by dataset, label, split and tag; keyset pages of up to 500',
        querystring: ListQuery,
        response: { 200: ImagePage, ...Errors },
      },
    },
    async (request) => {
      const { dataset, label, split, tag, limit, cursor } = request.query;
      const filters = { dataset, label, split, tag };
      const key = queryKey(filters);
      const after = cursor === undefined ? undefined : decodeCursor(cursor, key);
      const page = await images.list(filters, limit, after);
      return { items: page.items, nextCursor: page.next ? encodeCursor(key, page.next) : null };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/images/:id',
    {
      schema: {
        summary: 'One image’s metadata',
        params: IdParams,
        response: { 200: Image, 404: ErrorResponse, ...Errors },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const image = await images.get(id);
      if (!image) throw notFound(id);
      return image;
    },
  );

  app.patch<{ Params: { id: string }; Body: PatchInput }>(
    '/images/:id',
    {
      schema: {
        summary: 'Change an image’s label, split or tags; null clears label or split',
        params: IdParams,
        body: PatchBody,
        response: { 200: Image, 404: ErrorResponse, ...Errors },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const body = request.body;
      const patch = { ...body, ...(body.tags === undefined ? {} : { tags: [...new Set(body.tags)] }) };
      const image = await withTransaction(pool, (tx) => updateImage(tx, id, patch));
      if (!image) throw notFound(id);
      return image;
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/images/:id',
    {
      schema: {
        summary: 'Remove an image; its file goes too once no other data set holds the same content',
        params: IdParams,
        response: { 204: Type.Null(), 404: ErrorResponse, ...Errors },
      },
    },
    async (request, reply) => {
      const id = request.params.id.toLowerCase();
      const image = await withTransaction(pool, (tx) => deleteImage(tx, id));
      refs.delete(id);
      if (!image) throw notFound(id);
      // the row is gone whatever happens next; a file left behind here is the sweep's to remove
      await reclaimFiles(pool, store, [image.sha256]).catch((err: Error) => {
        request.log.warn({ err, sha256: image.sha256 }, 'could not remove the file yet; the sweep will');
      });
      return reply.code(204).send();
    },
  );
}
