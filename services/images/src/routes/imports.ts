import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorResponse, httpError } from '@berth/service-kit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { Type } from 'typebox';
import { insertJob, type JobFile, toJob } from '../db/jobs.ts';
import { withTransaction } from '../db/transaction.ts';
import { FormatError, type FormatName, openImport, type Split } from '../formats/index.ts';
import { uuidv7 } from '../ids.ts';
import type { ImportRunner } from '../imports/runner.ts';
import { checkDataset, checkSplit, shown } from '../names.ts';
import { brokenForm, checkDeclaredLength, cleanFilename, MULTIPART_ALLOWANCE, tooLarge } from '../receive.ts';
import { Errors, IdParams, ImportBody } from '../schemas.ts';
import { type Store, TooLarge } from '../storage/store.ts';

/** The limits an import upload is held to. */
export interface ImportLimits {
  maxImportBytes: number;
  maxImageBytes: number;
  maxPixels: number;
}

const FORMATS: FormatName[] = ['idx', 'cifar10', 'imagefolder'];
/** The most files one import takes (IDX: train and test pairs; CIFAR-10: six batches and the names). */
const MAX_FILES = 16;

const JobSchema = Type.Object({
  id: Type.String(),
  dataset: Type.String(),
  split: Type.Union([Type.String(), Type.Null()]),
  format: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  total: Type.Union([Type.Integer(), Type.Null()]),
  processed: Type.Integer(),
  imported: Type.Integer(),
  duplicates: Type.Integer(),
  failed: Type.Integer(),
  errors: Type.Array(Type.Object({ record: Type.String(), message: Type.String() })),
  message: Type.Union([Type.String(), Type.Null()]),
  attempts: Type.Integer(),
  files: Type.Array(Type.Object({ name: Type.String(), bytes: Type.Integer() })),
  createdAt: Type.String(),
  startedAt: Type.Union([Type.String(), Type.Null()]),
  finishedAt: Type.Union([Type.String(), Type.Null()]),
});

interface ImportForm {
  fields: Record<string, string>;
  files: JobFile[];
}

/** Saves every file of the form into the job's folder, within one byte budget for the whole request. */
async function receiveImport(
  request: FastifyRequest,
  reply: FastifyReply,
  store: Store,
  dir: string,
  limit: number,
): Promise<ImportForm> {
  const fields: Record<string, string> = {};
  const files: JobFile[] = [];
  let used = 0;
  try {
    const parts = request.parts({ limits: { fileSize: limit + 1, files: MAX_FILES, fields: 8, fieldSize: 1024 } });
    for await (const part of parts) {
      if (part.type === 'field') {
        if (part.valueTruncated) throw httpError(400, 'FIELD_TOO_LONG', `Form field "${part.fieldname}" is too long`);
        if (!['dataset', 'split', 'format'].includes(part.fieldname)) {
          throw httpError(
            400,
            'UNKNOWN_FIELD',
            `Form field "${part.fieldname}" is not known; send dataset, split, format and the files`,
          );
        }
        if (Object.hasOwn(fields, part.fieldname)) {
          throw httpError(400, 'REPEATED_FIELD', `Form field "${part.fieldname}" is given more than once`);
        }
        fields[part.fieldname] = String(part.value).trim();
        continue;
      }
      const name = cleanFilename(part.filename) ?? `file-${files.length + 1}`;
      const path = join(dir, `${files.length + 1}-${name.replace(/[^A-Za-z0-9._-]/g, '_')}`);
      const { bytes } = await store.receive(part.file, path, limit - used);
      used += bytes;
      files.push({ name, path, bytes });
    }
  } catch (err) {
    if (err instanceof TooLarge || (err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
      throw tooLarge(reply, limit, 'MAX_IMPORT_BYTES');
    }
    if ((err as { code?: string }).code === 'FST_FILES_LIMIT') {
      throw httpError(400, 'TOO_MANY_FILES', `An import takes at most ${MAX_FILES} files`);
    }
    throw brokenForm(err) ?? err;
  }
  return { fields, files };
}

/** POST /images/imports, GET /images/imports/:id and POST /images/imports/:id/retry. */
export function importRoutes(
  app: FastifyInstance,
  pool: pg.Pool,
  store: Store,
  runner: ImportRunner,
  limits: ImportLimits,
) {
  app.post(
    '/images/imports',
    {
      schema: {
        summary:
          'Import a data set: multipart/form-data with dataset, optional split and format (idx, cifar10, imagefolder) and the files. 202 with the job',
        bodyContent: ImportBody,
        response: { 202: JobSchema, 413: ErrorResponse, 415: ErrorResponse, 422: ErrorResponse, ...Errors },
      },
    },
    async (request, reply) => {
      if (!request.isMultipart()) {
        throw httpError(
          415,
          'UNSUPPORTED_MEDIA_TYPE',
          'Send the import as multipart/form-data: the fields dataset, split and format, and the data set files',
        );
      }
      checkDeclaredLength(request, reply, limits.maxImportBytes + MULTIPART_ALLOWANCE, 'MAX_IMPORT_BYTES');
      const id = uuidv7();
      const dir = store.importDir(id);
      await mkdir(dir, { recursive: true });
      try {
        const { fields, files } = await receiveImport(request, reply, store, dir, limits.maxImportBytes);
        if (!fields.dataset) throw httpError(400, 'DATASET_REQUIRED', 'Form field "dataset" is required');
        const dataset = checkDataset(fields.dataset);
        const split = fields.split ? checkSplit(fields.split) : null;
        const format = fields.format || undefined;
        if (format !== undefined && !FORMATS.includes(format as FormatName)) {
          throw httpError(400, 'INVALID_FORMAT', `Format ${shown(format)} is not one of ${FORMATS.join(', ')}`);
        }
        if (files.length === 0) throw httpError(400, 'NO_FILES', 'The form has no files; attach the data set files');
        // headers and layout are checked now, so a wrong file is refused here rather than as a failed job
        let opened: Awaited<ReturnType<typeof openImport>>;
        try {
          opened = await openImport(files, {
            format: format as FormatName | undefined,
            split: (split ?? undefined) as Split | undefined,
            maxPixels: limits.maxPixels,
            maxEntryBytes: limits.maxImageBytes,
          });
        } catch (err) {
          if (err instanceof FormatError) throw httpError(422, 'INVALID_DATASET', err.message);
          throw err;
        }
        const job = await withTransaction(pool, (tx) =>
          insertJob(tx, { id, dataset, split, format: opened.format, total: opened.total ?? null, files }),
        );
        runner.kick();
        return reply.code(202).header('location', `/images/imports/${id}`).send(job);
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    },
  );

  app.get<{ Params: { id: string } }>(
    '/images/imports/:id',
    {
      schema: {
        summary: 'An import job: status, total, processed, imported, duplicates, failed and the first errors',
        params: IdParams,
        response: { 200: JobSchema, 404: ErrorResponse, ...Errors },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const job = await runner.jobs.get(id);
      if (!job) throw httpError(404, 'IMPORT_NOT_FOUND', `Import job "${id}" does not exist`);
      return toJob(job);
    },
  );

  app.post<{ Params: { id: string } }>(
    '/images/imports/:id/retry',
    {
      schema: {
        summary: 'Queue an interrupted import again; it resumes after its last committed batch',
        params: IdParams,
        noBody: true,
        response: { 202: JobSchema, 404: ErrorResponse, 409: ErrorResponse, ...Errors },
      },
    },
    async (request, reply) => {
      const id = request.params.id.toLowerCase();
      const job = await runner.jobs.requeue(id);
      if (!job) {
        const current = await runner.jobs.get(id);
        if (!current) throw httpError(404, 'IMPORT_NOT_FOUND', `Import job "${id}" does not exist`);
        throw httpError(
          409,
          'NOT_INTERRUPTED',
          `Import job "${id}" is ${current.status}; only an interrupted job can be retried`,
        );
      }
      runner.kick();
      return reply.code(202).header('location', `/images/imports/${id}`).send(toJob(job));
    },
  );
}
