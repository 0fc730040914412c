import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type { ImageReader } from '../db/images.ts';
import { exportDataset } from '../export.ts';
import { Binary, DatasetList, DatasetParams, Errors, LabelList, LabelsQuery } from '../schemas.ts';
import type { Store } from '../storage/store.ts';

/** GET /images/datasets, GET /images/labels (counts per data set, label and split) and the export. */
export function datasetRoutes(app: FastifyInstance, images: ImageReader, store: Store) {
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

  app.get<{ Params: { name: string } }>(
    '/images/datasets/:name/export',
    {
      schema: {
        summary: 'The data set as an ImageFolder tar (<split>/<label>/<id>.<ext>), streamed',
        params: DatasetParams,
        response: {
          200: Binary('The data set as an ImageFolder tar archive', ['application/x-tar']),
          404: ErrorResponse,
          ...Errors,
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      if (!(await images.hasDataset(name))) {
        throw httpError(404, 'DATASET_NOT_FOUND', `Data set "${name}" holds no images`);
      }
      const archive = exportDataset(images, store, name, request.log);
      // a client that goes away stops the export instead of leaving it waiting for a reader
      reply.raw.once('close', () => archive.destroy());
      return reply
        .type('application/x-tar')
        .header('content-disposition', `attachment; filename="${name}.tar"`)
        .send(archive);
    },
  );
}
