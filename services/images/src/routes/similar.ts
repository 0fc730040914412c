import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { type Static, Type } from 'typebox';
import { toHex } from '../analysis/dhash.ts';
import { DEFAULT_THRESHOLD, PAIR_FLOOR } from '../analysis/verify.ts';
import type { SimilarityReader } from '../db/similarity.ts';
import { Dataset, Errors, IdParams, Image } from '../schemas.ts';

/** The lowest threshold a request may set: the worker keeps pairs from there (docs/decisions/0112). */
export const MIN_THRESHOLD = PAIR_FLOOR;

/** The verification score a near-duplicate reaches at least (docs/decisions/0111). */
export const Threshold = Type.Number({
  minimum: MIN_THRESHOLD,
  maximum: 1,
  default: DEFAULT_THRESHOLD,
  description: `must be a number from ${MIN_THRESHOLD} to 1: the verification score a pair reaches at least (default ${DEFAULT_THRESHOLD}; lower finds more copies and more look-alikes)`,
});

/** At most how many bits the closest of two images' perceptual hashes may differ by: by default no limit. */
export const Distance = Type.Integer({
  minimum: 0,
  maximum: 64,
  default: 64,
  description: 'must be a whole number of differing hash bits from 0 to 64 (64, the default, sets no limit)',
});

/** GET /images/:id/similar query. */
export const SimilarQuery = Type.Object(
  {
    threshold: Threshold,
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
  items: Type.Array(
    Type.Object({
      distance: Type.Integer({ description: 'bits in which the closest of the two images’ perceptual hashes differ' }),
      score: Type.Number({ description: 'the verification score, from the threshold to 1 (see docs/api.md)' }),
      image: Image,
    }),
  ),
});

type SimilarInput = Static<typeof SimilarQuery>;

/** GET /images/:id/similar: verified near-duplicates, highest score first. */
export function similarRoutes(app: FastifyInstance, reader: SimilarityReader) {
  app.get<{ Params: { id: string }; Querystring: SimilarInput }>(
    '/images/:id/similar',
    {
      schema: {
        summary:
          'Near-duplicates of this image whose verification score reaches `threshold`, highest score first: in its own data set those the images-worker found; with `dataset` naming another data set or `scope=all`, searched at request time',
        params: IdParams,
        querystring: SimilarQuery,
        response: { 200: SimilarPage, 404: ErrorResponse, 409: ErrorResponse, ...Errors },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const { threshold, distance, limit, dataset, scope } = request.query;
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
      if (state.hash === null || state.signature === null) {
        throw httpError(
          409,
          'IMAGE_NOT_ANALYSED',
          `Image "${id}" has not been analysed yet; try again once the images-worker has processed it`,
        );
      }
      const closeness = { threshold, distance };
      // in its own data set, the pairs the worker found; elsewhere, a search now
      const items =
        scope !== 'all' && (dataset === undefined || dataset === state.dataset)
          ? await reader.pairs(id, closeness, limit)
          : await reader.search(
              { id, hash: state.hash, signature: state.signature },
              closeness,
              limit,
              scope === 'all' ? undefined : dataset,
            );
      return { hash: toHex(state.hash), items };
    },
  );
}
