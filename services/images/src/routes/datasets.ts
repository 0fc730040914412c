import type { FastifyInstance } from 'fastify';
import type { ImageReader } from '../db/images.ts';
import { DatasetList, Errors, LabelList, LabelsQuery } from '../schemas.ts';

/** GET /images/datasets and GET /images/labels: counts per data set, label and split. */
export function datasetRoutes(app: FastifyInstance, images: ImageReader) {
  app.get(
    '/images/datasets',
    {
      schema: {
        summary: 'Every data set with its image count, bytes, number of labels and counts per split',
        response: { 200: DatasetList, ...Errors },
      },
    },
    async () => ({ items: await images.datasets() }),
  );

  app.get<{ Querystring: { dataset?: string } }>(
    '/images/labels',
    {
      schema: {
        summary: 'Labels with their image counts, overall and per split; in one data set or across all',
        querystring: LabelsQuery,
        response: { 200: LabelList, ...Errors },
      },
    },
    async (request) => ({ items: await images.labels(request.query.dataset) }),
  );
}
