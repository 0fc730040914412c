import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { acceptImage } from '../accept.ts';
import { uploadFields } from '../fields.ts';
import type { UploadFields } from '../ingest.ts';
import { checkDeclaredLength, MULTIPART_ALLOWANCE, receiveImage } from '../receive.ts';
import { Errors, Image, UploadBody, type UploadInput, UploadQuery } from '../schemas.ts';
import type { Store } from '../storage/store.ts';

/** The limits an upload is held to. */
export interface UploadLimits {
  maxUploadBytes: number;
  maxPixels: number;
}

/** POST /images: one image, as a multipart form or as a raw image/* body. */
export function uploadRoutes(app: FastifyInstance, pool: pg.Pool, store: Store, limits: UploadLimits) {
  app.post<{ Querystring: UploadInput }>(
    '/images',
    {
      schema: {
        summary:
          'Store one image: multipart/form-data (file, dataset, label, split, tags) or a raw image/* body with the fields in the query. 201 when new, 200 with the existing record for the same bytes in the same data set',
        querystring: UploadQuery,
        bodyContent: UploadBody,
        response: {
          200: Image,
          201: Image,
          413: ErrorResponse,
          415: ErrorResponse,
          422: ErrorResponse,
          ...Errors,
        },
      },
    },
    async (request, reply) => {
      const multipart = request.isMultipart();
      if (!multipart && !/^image\//i.test(request.headers['content-type'] ?? '')) {
        throw httpError(
          415,
          'UNSUPPORTED_MEDIA_TYPE',
          `Content-Type "${request.headers['content-type'] ?? ''}" is not accepted here; send multipart/form-data with a file part, or the raw bytes with Content-Type image/*`,
        );
      }
      checkDeclaredLength(
        request,
        reply,
        limits.maxUploadBytes + (multipart ? MULTIPART_ALLOWANCE : 0),
        'MAX_UPLOAD_BYTES',
      );
      const { upload, fields: form, filename } = await receiveImage(request, reply, store, limits.maxUploadBytes);
      let fields: UploadFields;
      try {
        fields = uploadFields(form, request.query, filename);
      } catch (err) {
        await store.discard(upload.staged);
        throw err;
      }
      const { image, created } = await acceptImage(pool, store, upload, fields, limits.maxPixels, 'request');
      return reply
        .code(created ? 201 : 200)
        .header('location', `/images/${image.id}`)
        .send(image);
    },
  );
}
