import type { Readable } from 'node:stream';
import { httpError } from '@berth/service-kit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Spooled, type Store, TooLarge } from './storage/store.ts';

/** Room for multipart boundaries and form fields on top of the file itself. */
export const MULTIPART_ALLOWANCE = 64 * 1024;

/** Form fields as received, before validation; repeated fields keep every value. */
export type RawFields = Record<string, string[]>;

/** Uploads up to this size are received in memory; larger ones go to a temp file as they arrive. */
export const IN_MEMORY_UPLOAD = 1024 * 1024;

/** An upload's bytes (in memory or in a temp file), its form fields and the name the client gave the file. */
export interface Received {
  upload: Spooled;
  fields: RawFields;
  filename: string | null;
}

/** The 413 for a body over the limit; the connection is closed so the rest is never read. */
export function tooLarge(reply: FastifyReply, limit: number, variable: string) {
  reply.header('connection', 'close');
  return httpError(413, 'TOO_LARGE', `The upload is larger than the limit of ${limit} bytes (${variable})`);
}

/** Refuses at once a body whose declared length is over the limit, before any of it is read. */
export function checkDeclaredLength(request: FastifyRequest, reply: FastifyReply, limit: number, variable: string) {
  const declared = Number(request.headers['content-length'] ?? Number.NaN);
  if (declared > limit) throw tooLarge(reply, limit, variable);
}

/** True for a multipart/form-data request. */
export function isMultipart(request: FastifyRequest): boolean {
  return request.isMultipart();
}

/** A client's file name, kept for reference only: the last path segment, without control characters. */
export function cleanFilename(name: string | undefined): string | null {
  if (!name) return null;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const base = (name.split(/[/\\]/).pop() ?? '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 255);
  return base || null;
}

function addField(fields: RawFields, name: string, value: string) {
  if (!Object.hasOwn(fields, name)) fields[name] = [];
  fields[name]?.push(value);
}

/**
 * Receives one image: from a multipart form (one file part plus fields) or from a raw image/*
 * body. The bytes stream to a temp file while being hashed and counted; more than `limit` bytes
 * stops the transfer with a 413 and leaves no temp file behind.
 */
export async function receiveImage(
  request: FastifyRequest,
  reply: FastifyReply,
  store: Store,
  limit: number,
): Promise<Received> {
  if (!isMultipart(request)) {
    const upload = await spool(store, request.body as Readable, limit, reply);
    if (upload.bytes === 0) throw httpError(400, 'EMPTY_UPLOAD', 'The body is empty; send the image bytes');
    return { upload, fields: {}, filename: null };
  }
  const fields: RawFields = {};
  let upload: Spooled | undefined;
  let filename: string | null = null;
  try {
    const parts = request.parts({
      // one byte over the limit is enough for the stream below to notice
      limits: { fileSize: limit + 1, files: 1, fields: 16, fieldSize: 4096, parts: 17 },
    });
    for await (const part of parts) {
      if (part.type === 'field') {
        if (part.valueTruncated) {
          throw httpError(400, 'FIELD_TOO_LONG', `Form field "${part.fieldname}" is longer than 4096 bytes`);
        }
        addField(fields, part.fieldname, String(part.value));
        continue;
      }
      upload = await spool(store, part.file, limit, reply);
      filename = cleanFilename(part.filename);
    }
  } catch (err) {
    await store.discard(upload?.staged);
    throw translateMultipart(err, reply, limit);
  }
  if (!upload) {
    throw httpError(400, 'NO_FILE', 'The form has no file part; add the image as a file field (e.g. "file")');
  }
  if (upload.bytes === 0) throw httpError(400, 'EMPTY_UPLOAD', 'The file part is empty; send the image bytes');
  return { upload, fields, filename };
}

async function spool(store: Store, source: Readable, limit: number, reply: FastifyReply): Promise<Spooled> {
  try {
    return await store.spool(source, limit, IN_MEMORY_UPLOAD);
  } catch (err) {
    if (err instanceof TooLarge) throw tooLarge(reply, limit, 'MAX_UPLOAD_BYTES');
    throw err;
  }
}

/** @fastify/multipart's limit errors, said in this API's words. */
function translateMultipart(err: unknown, reply: FastifyReply, limit: number): unknown {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return tooLarge(reply, limit, 'MAX_UPLOAD_BYTES');
    case 'FST_FILES_LIMIT':
      return httpError(400, 'ONE_FILE_ONLY', 'Send one file per upload; use POST /images/imports for many images');
    case 'FST_FIELDS_LIMIT':
    case 'FST_PARTS_LIMIT':
      return httpError(
        400,
        'TOO_MANY_FIELDS',
        'The form has too many fields; send file, dataset, label, split and tags',
      );
    default:
      return brokenForm(err) ?? err;
  }
}

/** A form that is not well-formed multipart (cut short, a bad boundary, a forbidden name) as a 400; otherwise undefined. */
export function brokenForm(err: unknown) {
  const code = (err as { code?: string }).code;
  if (code === 'FST_PROTO_VIOLATION') {
    return httpError(400, 'INVALID_FIELD', 'The form has a field name that is not allowed');
  }
  if (code === 'FST_MP_PREMATURE_CLOSE') {
    return httpError(400, 'INCOMPLETE_UPLOAD', 'The request ended before the form was complete');
  }
  if (code === undefined && err instanceof Error && /multipart|boundary|part header|end of form/i.test(err.message)) {
    return httpError(400, 'INVALID_MULTIPART', `The multipart body could not be read (${err.message})`);
  }
  return undefined;
}
