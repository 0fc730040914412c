import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { type Static, Type } from 'typebox';
import { queryKey } from '../cursor.ts';
import type { ImageReader } from '../db/images.ts';
import type { PairPosition, SimilarityReader } from '../db/similarity.ts';
import { DatasetParams, Errors, Image } from '../schemas.ts';
import { Distance, Threshold } from './similar.ts';

/** GET /images/datasets/:name/leaks query. */
export const LeaksQuery = Type.Object(
  {
    threshold: Threshold,
    distance: Distance,
    split: Type.Optional(
      Type.Union([Type.Literal('test'), Type.Literal('val')], {
        description: 'must be test or val (both when left out)',
      }),
    ),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'must be a whole number from 1 to 500' }),
    cursor: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9_-]{1,300}$', description: 'must be the nextCursor of a previous page' }),
    ),
  },
  { additionalProperties: false },
);

/** A page of leaks: evaluation images that near-duplicate training images. */
export const LeakPage = Type.Object({
  items: Type.Array(
    Type.Object({
      distance: Type.Integer({ description: 'bits in which the closest of the two images’ perceptual hashes differ' }),
      score: Type.Number({ description: 'the verification score, from the threshold to 1 (see docs/api.md)' }),
      image: Image,
      train: Image,
    }),
  ),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  unanalysed: Type.Integer({
    description: 'images of the data set the worker has not analysed yet; the list is complete when this is 0',
  }),
});

type LeaksInput = Static<typeof LeaksQuery>;

const VERSION = 2;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** An opaque cursor after a pair: base64url JSON of [version, query key, image id, train id]. */
function encodePair(key: string, position: PairPosition): string {
  return Buffer.from(JSON.stringify([VERSION, key, position.imageId, position.trainId])).toString('base64url');
}

function decodePair(cursor: string, key: string): PairPosition {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parts = undefined;
  }
  const shown = cursor.length > 40 ? `${cursor.slice(0, 37)}...` : cursor;
  if (!Array.isArray(parts) || parts.length !== 4 || parts[0] !== VERSION) {
    throw httpError(
      400,
      'INVALID_CURSOR',
      `Query parameter "cursor" is not a cursor this API handed out; use nextCursor from the previous page (got "${shown}")`,
    );
  }
  const [, cursorKey, imageId, trainId] = parts;
  if (cursorKey !== key) {
    throw httpError(
      400,
      'INVALID_CURSOR',
      `Query parameter "cursor" belongs to a different query; repeat the same threshold, distance and split or drop it (got "${shown}")`,
    );
  }
  if (typeof imageId !== 'string' || !UUID.test(imageId) || typeof trainId !== 'string' || !UUID.test(trainId)) {
    throw httpError(
      400,
      'INVALID_CURSOR',
      `Query parameter "cursor" is not a cursor this API handed out; use nextCursor from the previous page (got "${shown}")`,
    );
  }
  return { imageId, trainId };
}

/** GET /images/datasets/:name/leaks: test and val images that near-duplicate train images of the same data set. */
export function leakRoutes(app: FastifyInstance, images: ImageReader, reader: SimilarityReader) {
  app.get<{ Params: { name: string }; Querystring: LeaksInput }>(
    '/images/datasets/:name/leaks',
    {
      schema: {
        summary:
          'Pairs of a test (or val) image and a train image of the data set that are near-duplicates (verification score at least `threshold`): a leak between splits; keyset pages',
        params: DatasetParams,
        querystring: LeaksQuery,
        response: { 200: LeakPage, 404: ErrorResponse, ...Errors },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { threshold, distance, split, limit, cursor } = request.query;
      const key = queryKey({ dataset: name, threshold, distance, split });
      const after = cursor === undefined ? undefined : decodePair(cursor, key);
      if (!(await images.hasDataset(name))) {
        throw httpError(404, 'DATASET_NOT_FOUND', `Data set "${name}" holds no images`);
      }
      const splits = split === undefined ? ['test', 'val'] : [split];
      const [page, unanalysed] = await Promise.all([
        reader.leaks(name, splits, { threshold, distance }, limit, after),
        reader.unanalysed(name),
      ]);
      return {
        items: page.items,
        nextCursor: page.next ? encodePair(key, page.next) : null,
        unanalysed,
      };
    },
  );
}
