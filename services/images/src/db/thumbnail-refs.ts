import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import type { Format } from './images.ts';
import { prepared } from './transaction.ts';

/** What a batch of thumbnails needs of an image: its content hash and what the file is. */
export interface ThumbnailRef {
  sha256: string;
  format: Format;
  width: number;
  height: number;
  bytes: number;
}

/** The images asked for that exist, by id; ids without a row are absent. */
export async function thumbnailRefs(pool: pg.Pool, ids: string[]): Promise<Map<string, ThumbnailRef>> {
  const { rows } = await withPostgres(() =>
    pool.query<ThumbnailRef & { id: string; bytes: string }>(
      prepared('SELECT id::text AS id, sha256, format, width, height, bytes FROM images WHERE id = ANY($1::uuid[])', [
        ids,
      ]),
    ),
  );
  return new Map(rows.map(({ id, bytes, ...ref }) => [id, { ...ref, bytes: Number(bytes) }]));
}
