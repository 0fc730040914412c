import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { type Static, Type } from 'typebox';
import { toHex } from '../analysis/dhash.ts';
import type { SimilarityReader } from '../db/analysis.ts';
import { Dataset, Errors, IdParams, Image } from '../schemas.ts';

/** The widest search: with four bands, up to 11 differing bits is still at most 2 per band somewhere (migration 0003). */
export const MAX_DISTANCE = 11;
/** Resized or recompressed copies of a picture land within a few bits; unrelated pictures, 20 and more apart. */
export const DEFAULT_DISTANCE = 6;

/** How far a near-duplicate may be, in differing hash bits. */
export const Distance = Type.Integer({
  minimum: 0,
  maximum: MAX_DISTANCE,
  default: DEFAULT_DISTANCE,
  description: `must be a whole number of differing hash bits from 0 to ${MAX_DISTANCE}`,
});

/** GET /images/:id/similar query. */
export const SimilarQuery = Type.Object(
  {
    distance: Distance,
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'must be a whole number from 1 to 100' }),
    dataset: Type.Optional(Dataset),
    scope: Type.Optional(
      Type.Union([Type.Literal('dataset'), Type.Literal('all')], {
        description: 'must be dataset (the image’s own data set, the default) or all',
      }),
    ),
  },
  { additionalProperties: false },
);

/** Near-duplicates of an image. */
export const SimilarPage = Type.Object({
  hash: Type.String({ description: 'the image’s 64-bit difference hash (dHash) in hex' }),
  items: Type.Array(Type.Object({ distance: Type.Integer(), image: Image })),
});

type SimilarInput = Static<typeof SimilarQuery>;

/** GET /images/:id/similar: near-duplicates by perceptual hash, nearest first. */
export function similarRoutes(app: FastifyInstance, reader: SimilarityReader) {
  app.get<{ Params: { id: string }; Querystring: SimilarInput }>(
    '/images/:id/similar',
    {
      schema: {
        summary:
          'Images whose perceptual hash is within `distance` bits of this one’s, nearest first; in its own data set unless `dataset` or `scope=all` says otherwise',
        params: IdParams,
        querystring: SimilarQuery,
        response: { 200: SimilarPage, 404: ErrorResponse, 409: ErrorResponse, ...Errors },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const { distance, limit, dataset, scope } = request.query;
      if (scope === 'all' && dataset !== undefined) {
        throw httpError(
          400,
          'CONFLICTING_SCOPE',
          `Query parameters "dataset" ("${dataset}") and "scope" ("all") contradict each other; give one of them`,
        );
      }
      const state = await reader.state(id);
      if (!state) throw httpError(404, 'IMAGE_NOT_FOUND', `Image "${id}" does not exist`);
      if (state.status === 'failed') {
        throw httpError(409, 'IMAGE_ANALYSIS_FAILED', `Image "${id}" could not be analysed: ${state.error}`);
      }
      if (state.hash === null) {
        throw httpError(
          409,
          'IMAGE_NOT_ANALYSED',
          `Image "${id}" has not been analysed yet; try again once the images-worker has processed it`,
        );
      }
      const searched = scope === 'all' ? undefined : (dataset ?? state.dataset);
      const items = await reader.similar(state.hash, id, distance, limit, searched);
      return { hash: toHex(state.hash), items };
    },
  );
}
