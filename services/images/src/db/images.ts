import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import type { Position } from '../cursor.ts';
import { eventsWritten, recordEvent } from '../events/outbox.ts';
import { prepared, type Tx } from './transaction.ts';

/** The image formats stored, by the names sharp reports (AVIF mapped from HEIF with AV1). */
export const FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] as const;
/** One of the stored formats. */
export type Format = (typeof FORMATS)[number];

/** The Content-Type each format is served with. */
export const CONTENT_TYPES: Record<Format, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  tiff: 'image/tiff',
  avif: 'image/avif',
};

/** File name extensions by format, for exports. */
export const EXTENSIONS: Record<Format, string> = {
  jpeg: 'jpg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
  tiff: 'tiff',
  avif: 'avif',
};

/** An image row as PostgreSQL returns it. */
export interface ImageRow {
  id: string;
  sha256: string;
  dataset: string;
  label: string | null;
  split: string | null;
  tags: string[];
  format: Format;
  width: number;
  height: number;
  channels: number;
  bytes: string;
  original_name: string | null;
  created_at: Date;
  updated_at: Date;
}

/** An image's metadata as the API serves it. */
export interface Image {
  id: string;
  dataset: string;
  label: string | null;
  split: string | null;
  tags: string[];
  sha256: string;
  format: Format;
  contentType: string;
  width: number;
  height: number;
  channels: number;
  bytes: number;
  filename: string | null;
  createdAt: string;
  updatedAt: string;
  fileUrl: string;
}

/** A new row, before PostgreSQL dates it. */
export interface NewImage {
  id: string;
  sha256: string;
  dataset: string;
  label: string | null;
  split: string | null;
  tags: string[];
  format: Format;
  width: number;
  height: number;
  channels: number;
  bytes: number;
  filename: string | null;
}

/** The fields PATCH may change; null clears label or split. */
export interface ImagePatch {
  label?: string | null;
  split?: string | null;
  tags?: string[];
}

/** What serving an image's bytes needs. */
export interface FileRef {
  sha256: string;
  format: Format;
  bytes: number;
}

/** The filters GET /images takes; split "none" means rows without a split. */
export interface ListFilters {
  dataset?: string;
  label?: string;
  split?: string;
  tag?: string;
}

/** Counts of a group of images by split; `none` counts those without one. */
export interface SplitCounts {
  train: number;
  test: number;
  val: number;
  none: number;
}

/** The columns toImage reads, for queries elsewhere that return images. */
export const COLUMNS =
  'id, sha256, dataset, label, split, tags, format, width, height, channels, bytes, original_name, created_at, updated_at';

/** The API shape of a row. */
export function toImage(row: ImageRow): Image {
  return {
    id: row.id,
    dataset: row.dataset,
    label: row.label,
    split: row.split,
    tags: row.tags,
    sha256: row.sha256,
    format: row.format,
    contentType: CONTENT_TYPES[row.format],
    width: row.width,
    height: row.height,
    channels: row.channels,
    bytes: Number(row.bytes),
    filename: row.original_name,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    fileUrl: `/images/${row.id}/file`,
  };
}

// ---- writes: each takes the transaction it is part of, so callers can add rows to the same
// commit; each writes the outbox event of the change it makes, after the row (whose lock orders them)

/** The row a new image becomes, dated `at` by this process's clock (both dates), as toImage reads it. */
function newRow(image: NewImage, at: Date): ImageRow {
  return {
    id: image.id,
    sha256: image.sha256,
    dataset: image.dataset,
    label: image.label,
    split: image.split,
    tags: image.tags,
    format: image.format,
    width: image.width,
    height: image.height,
    channels: image.channels,
    bytes: String(image.bytes),
    original_name: image.filename,
    created_at: at,
    updated_at: at,
  };
}

// A new image and its created event go in with one statement: the rows are dated here, so the
// event's payload (the image as the API serves it) is known before the insert, and the event row
// is written only for an image row that was (ON CONFLICT skips content the data set holds). The
// outbox rows come from the inserted rows, so each image row is written, and locked, before its event.
// A created event's id is its image's id: each image has exactly one, and whoever applies it can
// name it without reading the outbox (decision 0108).
const INSERT = `WITH ins AS (
    INSERT INTO images (id, sha256, dataset, label, split, tags, format, width, height, channels, bytes, original_name, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6::text[], $7, $8, $9, $10, $11, $12, $13, $13)
    ON CONFLICT (dataset, sha256) DO NOTHING
    RETURNING id
  ), event AS (
    INSERT INTO outbox (id, type, image_id, dataset, payload) SELECT id, 'created', id, $3, $14::jsonb FROM ins
  )
  SELECT id FROM ins`;

/** Inserts one image with its created event; undefined when the data set already holds the same content. */
export async function insertImage(tx: Tx, image: NewImage): Promise<Image | undefined> {
  const created = toImage(newRow(image, new Date()));
  const { rowCount } = await tx.query(
    prepared(INSERT, [
      image.id,
      image.sha256,
      image.dataset,
      image.label,
      image.split,
      image.tags,
      image.format,
      image.width,
      image.height,
      image.channels,
      image.bytes,
      image.filename,
      created.createdAt,
      JSON.stringify(created),
    ]),
  );
  if (!rowCount) return undefined;
  eventsWritten(tx);
  return created;
}

/** The image with this content in this data set, if any. */
export async function findByContent(tx: Tx, dataset: string, sha256: string): Promise<Image | undefined> {
  const { rows } = await tx.query<ImageRow>(
    prepared(`SELECT ${COLUMNS} FROM images WHERE dataset = $1 AND sha256 = $2`, [dataset, sha256]),
  );
  return rows[0] ? toImage(rows[0]) : undefined;
}

// insertImage for many rows of one data set. The images go in as one JSON array of their API
// shapes, which are also their created events' payloads: one parameter PostgreSQL parses, rather
// than a dozen arrays the driver escapes element by element. The rows are read out of it, and the
// events joined to the rows that went in (content the data set holds, or that repeats within the
// batch, is skipped), in the order given.
const INSERT_MANY = `WITH given AS (
    SELECT e.payload, e.n FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(payload, n)
  ), ins AS (
    INSERT INTO images (id, sha256, dataset, label, split, tags, format, width, height, channels, bytes, original_name, created_at, updated_at)
    SELECT (p->>'id')::uuid, p->>'sha256', $2, p->>'label', p->>'split', $3::text[], p->>'format',
      (p->>'width')::int, (p->>'height')::int, (p->>'channels')::int, (p->>'bytes')::int8, p->>'filename', $4, $4
    FROM given AS g(p, n)
    ORDER BY n
    ON CONFLICT (dataset, sha256) DO NOTHING
    RETURNING id, sha256
  ), event AS (
    INSERT INTO outbox (id, type, image_id, dataset, payload)
    SELECT ins.id, 'created', ins.id, $2, given.payload
    FROM given JOIN ins ON ins.id = (given.payload->>'id')::uuid
    ORDER BY given.n
  )
  SELECT sha256 FROM ins`;

/**
 * Inserts many images of one data set with their created events in one statement. Returns the
 * hashes stored; the rest were content the data set already held.
 */
export async function insertImages(tx: Tx, dataset: string, tags: string[], images: NewImage[]): Promise<string[]> {
  if (images.length === 0) return [];
  const at = new Date();
  const shown = images.map((image) => toImage(newRow({ ...image, dataset, tags }, at)));
  const { rows } = await tx.query<{ sha256: string }>(
    prepared(INSERT_MANY, [JSON.stringify(shown), dataset, tags, at.toISOString()]),
  );
  if (rows.length > 0) eventsWritten(tx);
  return rows.map((row) => row.sha256);
}

/** Changes label, split or tags; undefined when there is no such image. */
export async function updateImage(tx: Tx, id: string, patch: ImagePatch): Promise<Image | undefined> {
  const sets: string[] = [];
  const values: unknown[] = [id];
  if (patch.label !== undefined) {
    values.push(patch.label);
    sets.push(`label = $${values.length}`);
  }
  if (patch.split !== undefined) {
    values.push(patch.split);
    sets.push(`split = $${values.length}`);
  }
  if (patch.tags !== undefined) {
    values.push(patch.tags);
    sets.push(`tags = $${values.length}::text[]`);
  }
  const { rows } = await tx.query<ImageRow>(
    prepared(`UPDATE images SET ${sets.join(', ')} WHERE id = $1 RETURNING ${COLUMNS}`, values),
  );
  if (!rows[0]) return undefined;
  const updated = toImage(rows[0]);
  await recordEvent(tx, 'updated', updated);
  return updated;
}

/** Deletes an image row; returns what it was, or undefined when there was none. */
export async function deleteImage(tx: Tx, id: string): Promise<Image | undefined> {
  const { rows } = await tx.query<ImageRow>(prepared(`DELETE FROM images WHERE id = $1 RETURNING ${COLUMNS}`, [id]));
  if (!rows[0]) return undefined;
  const deleted = toImage(rows[0]);
  await recordEvent(tx, 'deleted', deleted);
  return deleted;
}

// ---- reads

function splitCounts(row: { train: number; test: number; val: number; none: number }): SplitCounts {
  return { train: row.train, test: row.test, val: row.val, none: row.none };
}

const SPLIT_COUNTS = `count(*) FILTER (WHERE split = 'train')::int AS train,
  count(*) FILTER (WHERE split = 'test')::int AS test,
  count(*) FILTER (WHERE split = 'val')::int AS val,
  count(*) FILTER (WHERE split IS NULL)::int AS none`;

/** Reads on the pool; every outage is the shared 503. */
export function imageReader(pool: pg.Pool) {
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    withPostgres(() => pool.query<R>(prepared(text, values)));

  return {
    /** One image by id. */
    async get(id: string): Promise<Image | undefined> {
      const { rows } = await query<ImageRow>(`SELECT ${COLUMNS} FROM images WHERE id = $1`, [id]);
      return rows[0] ? toImage(rows[0]) : undefined;
    },

    /** Just what serving the bytes needs. */
    async fileRef(id: string): Promise<FileRef | undefined> {
      const { rows } = await query<{ sha256: string; format: Format; bytes: string }>(
        'SELECT sha256, format, bytes FROM images WHERE id = $1',
        [id],
      );
      const row = rows[0];
      return row ? { sha256: row.sha256, format: row.format, bytes: Number(row.bytes) } : undefined;
    },

    /** A keyset page in id order (oldest first) under the filters; `next` is set when more follow. */
    async list(filters: ListFilters, limit: number, after?: Position): Promise<{ items: Image[]; next?: Position }> {
      const values: unknown[] = [];
      const add = (value: unknown) => {
        values.push(value);
        return `$${values.length}`;
      };
      const conditions: string[] = [];
      if (filters.dataset !== undefined) conditions.push(`dataset = ${add(filters.dataset)}`);
      if (filters.label !== undefined) conditions.push(`label = ${add(filters.label)}`);
      if (filters.split === 'none') conditions.push('split IS NULL');
      else if (filters.split !== undefined) conditions.push(`split = ${add(filters.split)}`);
      if (filters.tag !== undefined) conditions.push(`tags @> ARRAY[${add(filters.tag)}]::text[]`);
      if (after) conditions.push(`id > ${add(after.id)}::uuid`);
      const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
      const { rows } = await query<ImageRow>(
        `SELECT ${COLUMNS} FROM images ${where} ORDER BY id LIMIT ${add(limit + 1)}`,
        values,
      );
      const items = rows.slice(0, limit).map(toImage);
      const last = items.at(-1);
      return { items, next: rows.length > limit && last ? { id: last.id } : undefined };
    },

    /** Every data set with its image count, bytes, label count and split counts. */
    async datasets() {
      const { rows } = await query<{
        name: string;
        count: number;
        bytes: string;
        labels: number;
        train: number;
        test: number;
        val: number;
        none: number;
      }>(
        `SELECT dataset AS name, count(*)::int AS count, sum(bytes)::int8 AS bytes,
           count(DISTINCT label)::int AS labels, ${SPLIT_COUNTS}
         FROM images GROUP BY dataset ORDER BY dataset`,
      );
      return rows.map((row) => ({
        name: row.name,
        count: row.count,
        bytes: Number(row.bytes),
        labels: row.labels,
        splits: splitCounts(row),
      }));
    },

    /** Labels with their counts, overall and per split; in one data set or across all. */
    async labels(dataset?: string) {
      const where = dataset === undefined ? '' : 'WHERE dataset = $1';
      const { rows } = await query<{
        label: string | null;
        count: number;
        train: number;
        test: number;
        val: number;
        none: number;
      }>(
        `SELECT label, count(*)::int AS count, ${SPLIT_COUNTS}
         FROM images ${where} GROUP BY label ORDER BY label NULLS LAST`,
        dataset === undefined ? [] : [dataset],
      );
      return rows.map((row) => ({ label: row.label, count: row.count, splits: splitCounts(row) }));
    },

    /** True when the data set holds at least one image. */
    async hasDataset(dataset: string): Promise<boolean> {
      const { rows } = await query('SELECT 1 FROM images WHERE dataset = $1 LIMIT 1', [dataset]);
      return rows.length > 0;
    },

    /** The next page of a data set in id order, for exports. */
    async page(dataset: string, afterId: string | null, limit: number): Promise<Image[]> {
      // two statements rather than "$2 IS NULL OR id > $2", which a generic plan cannot use as an index bound
      const { rows } =
        afterId === null
          ? await query<ImageRow>(`SELECT ${COLUMNS} FROM images WHERE dataset = $1 ORDER BY id LIMIT $2`, [
              dataset,
              limit,
            ])
          : await query<ImageRow>(
              `SELECT ${COLUMNS} FROM images WHERE dataset = $1 AND id > $2::uuid ORDER BY id LIMIT $3`,
              [dataset, afterId, limit],
            );
      return rows.map(toImage);
    },
  };
}

/** Image reads as routes see them. */
export type ImageReader = ReturnType<typeof imageReader>;
