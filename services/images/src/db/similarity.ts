import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import { fromSigned, toSigned } from '../analysis/dhash.ts';
import { hashDistance, type Signature, unpackSignature } from '../analysis/signature.ts';
import { verificationScore } from '../analysis/verify.ts';
import { COLUMNS, type Image, type ImageRow, toImage } from './images.ts';
import { prepared } from './transaction.ts';

/** An image's analysis as the similar route needs it. */
export interface AnalysisState {
  id: string;
  dataset: string;
  status: 'done' | 'failed' | null;
  hash: bigint | null;
  signature: Signature | null;
  error: string | null;
}

/** One near-duplicate: how many difference-hash bits it differs by, and its verification score. */
export interface Match {
  distance: number;
  score: number;
  image: Image;
}

/** A test or val image that near-duplicates a train image of its data set. */
export interface Leak {
  distance: number;
  score: number;
  image: Image;
  train: Image;
}

/** Where the next page of leaks starts: after this (image, train image) pair. */
export interface PairPosition {
  imageId: string;
  trainId: string;
}

/** What near-duplicate reads are filtered by: the verification threshold, and at most this many dHash bits. */
export interface Closeness {
  threshold: number;
  distance: number;
}

/** The image columns, each qualified by a table alias. */
const prefixed = (alias: string) =>
  COLUMNS.split(',')
    .map((column) => `${alias}.${column.trim()}`)
    .join(', ');

const STATE = `SELECT i.id, i.dataset, i.phash, s.signature, i.analysis_status, i.analysis_error
  FROM images i LEFT JOIN image_signatures s ON s.image_id = i.id
  WHERE i.id = $1::uuid`;

/** An image's stored pairs in its own data set ($1 id), from $2 score and within $3 bits, best first, $4 of them. */
const PAIRS = `SELECT ${prefixed('i')}, p.score, p.distance
  FROM image_pairs p JOIN images i ON i.id = p.other_id
  WHERE p.image_id = $1::uuid AND p.score >= $2 AND p.distance <= $3
  ORDER BY p.score DESC, p.distance, p.other_id
  LIMIT $4`;

// The band of a hash as the four indexes of migration 0003 cut it; the expressions must be written
// exactly so for PostgreSQL to match them to those indexes.
function band(hash: string, shift: number): string {
  return shift === 0 ? `(${hash} & 65535)` : `((${hash} >> ${shift}) & 65535)`;
}

/** How many dHash bits apart a candidate of a search outside the image's data set may be. */
export const SEARCH_DISTANCE = 11;

/**
 * The candidates of an image searched outside its data set: the analysed images (in data set $4,
 * or all) whose dHash is within SEARCH_DISTANCE bits of the probe's ($1), found by multi-index
 * hashing on the four band indexes (a band within 2 bits, by pigeonhole), itself ($2) left out,
 * with their signatures; at most SEARCH_LIMIT. Coarser than the worker's candidates.
 */
const searchCandidates = (scoped: boolean) => `SELECT ${prefixed('i')}, s.signature
  FROM images i JOIN image_signatures s ON s.image_id = i.id
  WHERE i.id IN (${[48, 32, 16, 0]
    .map(
      (shift) => `SELECT c.id FROM unnest(image_hash_band_ball(${band('$1::int8', shift)}, 2)) AS v(band)
      JOIN images c ON ${band('c.phash', shift)} = v.band`,
    )
    .join(' UNION ')})
    AND bit_count((i.phash # $1::int8)::bit(64)) <= ${SEARCH_DISTANCE}
    AND i.id <> $2::uuid AND i.analysis_status = 'done'${scoped ? ' AND i.dataset = $3' : ''}
  LIMIT ${SEARCH_LIMIT}`;

/** Candidates verified at most by a search outside the image's own data set, so it answers in bounded time. */
export const SEARCH_LIMIT = 2000;

/**
 * A page of the leak report: the data set's stored pairs ($1) of a test or val image ($2 splits)
 * and a train image, from $3 score and within $4 bits, after the pair ($5, $6), $7 of them.
 */
export const leaksSql = `SELECT p.image_id, p.other_id AS train_id, p.score, p.distance
  FROM image_pairs p
  JOIN images t ON t.id = p.image_id
  JOIN images r ON r.id = p.other_id
  WHERE p.dataset = $1 AND (p.dataset, p.image_id, p.other_id) > ($1, $5::uuid, $6::uuid)
    AND t.split = ANY($2::text[]) AND r.split = 'train' AND p.score >= $3 AND p.distance <= $4
  ORDER BY p.image_id, p.other_id
  LIMIT $7`;

/** The smallest UUID: a position before every image. */
const FIRST = '00000000-0000-0000-0000-000000000000';

/** Near-duplicate reads for the API, on the pool; every outage is the shared 503. */
export function similarityReader(pool: pg.Pool) {
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) =>
    withPostgres(() => pool.query<R>(prepared(text, values)));

  return {
    /** An image's analysis state; undefined when there is no such image. */
    async state(id: string): Promise<AnalysisState | undefined> {
      const { rows } = await query<{
        id: string;
        dataset: string;
        phash: string | null;
        signature: Buffer | null;
        analysis_status: 'done' | 'failed' | null;
        analysis_error: string | null;
      }>(STATE, [id]);
      const row = rows[0];
      if (!row) return undefined;
      return {
        id: row.id,
        dataset: row.dataset,
        status: row.analysis_status,
        hash: row.phash === null ? null : fromSigned(row.phash),
        signature: row.signature === null ? null : unpackSignature(row.signature),
        error: row.analysis_error,
      };
    },

    /** The near-duplicates the worker found for an image in its own data set, best score first. */
    async pairs(id: string, closeness: Closeness, limit: number): Promise<Match[]> {
      const { rows } = await query<ImageRow & { score: number; distance: number }>(PAIRS, [
        id,
        closeness.threshold,
        closeness.distance,
        limit,
      ]);
      return rows.map((row) => ({ distance: row.distance, score: row.score, image: toImage(row) }));
    },

    /**
     * The near-duplicates of an analysed image searched now, in another data set or all: its
     * candidates by dHash (at most SEARCH_LIMIT), verified; best score first.
     */
    async search(
      probe: { id: string; hash: bigint; signature: Signature },
      closeness: Closeness,
      limit: number,
      dataset?: string,
    ): Promise<Match[]> {
      const values: unknown[] = [toSigned(probe.hash), probe.id];
      if (dataset !== undefined) values.push(dataset);
      const { rows } = await query<ImageRow & { signature: Buffer }>(searchCandidates(dataset !== undefined), values);
      const matches: Match[] = [];
      for (const row of rows) {
        const signature = unpackSignature(row.signature);
        const distance = hashDistance(probe.signature, signature);
        if (distance > closeness.distance) continue;
        const score = verificationScore(probe.signature, signature, closeness.threshold);
        if (score >= closeness.threshold) matches.push({ distance, score, image: toImage(row) });
      }
      matches.sort((a, b) => b.score - a.score || a.distance - b.distance || (a.image.id < b.image.id ? -1 : 1));
      return matches.slice(0, limit);
    },

    /** How many images of the data set the worker has not analysed yet. */
    async unanalysed(dataset: string): Promise<number> {
      const { rows } = await query<{ count: number }>(
        'SELECT count(*)::int AS count FROM images WHERE dataset = $1 AND analysis_status IS NULL',
        [dataset],
      );
      return rows[0]?.count ?? 0;
    },

    /**
     * A keyset page of the data set's (test or val image, train image) near-duplicate pairs, in
     * (image id, train id) order; `next` is set when more may follow.
     */
    async leaks(
      dataset: string,
      splits: string[],
      closeness: Closeness,
      limit: number,
      after: PairPosition = { imageId: FIRST, trainId: FIRST },
    ): Promise<{ items: Leak[]; next?: PairPosition }> {
      const { rows: pairs } = await query<{ image_id: string; train_id: string; score: number; distance: number }>(
        leaksSql,
        [dataset, splits, closeness.threshold, closeness.distance, after.imageId, after.trainId, limit + 1],
      );
      const page = pairs.slice(0, limit);
      const ids = [...new Set(page.flatMap((pair) => [pair.image_id, pair.train_id]))];
      const { rows } = ids.length
        ? await query<ImageRow>(`SELECT ${COLUMNS} FROM images WHERE id = ANY($1::uuid[])`, [ids])
        : { rows: [] };
      const byId = new Map(rows.map((row) => [row.id, toImage(row)]));
      const items: Leak[] = [];
      for (const pair of page) {
        const image = byId.get(pair.image_id);
        const train = byId.get(pair.train_id);
        // an image deleted between the reads drops out of the page
        if (image && train) items.push({ distance: pair.distance, score: pair.score, image, train });
      }
      const last = page.at(-1);
      return pairs.length > limit && last
        ? { items, next: { imageId: last.image_id, trainId: last.train_id } }
        : { items };
    },
  };
}

/** Near-duplicate reads as routes see them. */
export type SimilarityReader = ReturnType<typeof similarityReader>;
