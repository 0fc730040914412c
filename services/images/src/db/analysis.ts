import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import { fromSigned, toSigned } from '../analysis/dhash.ts';
import { COLUMNS, type Image, type ImageRow, toImage } from './images.ts';
import { prepared } from './transaction.ts';

/** What the worker found out about an image: its hash, or why it could not be decoded. */
export type AnalysisOutcome = { status: 'done'; hash: bigint } | { status: 'failed'; error: string };

/** An image's analysis as the similar route needs it. */
export interface AnalysisState {
  id: string;
  dataset: string;
  status: 'done' | 'failed' | null;
  hash: bigint | null;
  error: string | null;
}

/** One near-duplicate and how many hash bits it differs by. */
export interface Match {
  distance: number;
  image: Image;
}

/** A test or val image that near-duplicates a train image of its data set. */
export interface Leak {
  distance: number;
  image: Image;
  train: Image;
}

/** Where the next page of leaks starts: after this (image, train image) pair. */
export interface PairPosition {
  imageId: string;
  trainId: string;
}

// The band of a hash as the four partial indexes of migration 0003 cut it; the expressions must be
// written exactly so for PostgreSQL to match them to those indexes.
function band(hash: string, shift: number): string {
  return shift === 0 ? `(${hash} & 65535)` : `((${hash} >> ${shift}) & 65535)`;
}

/**
 * The rows (id, split, hash) that may lie within `distance` bits of `probe`: for each band, every band
 * value within distance / 4 bits of the probe's, joined to that band's index (see migration 0003).
 * Written as joins on unnest rather than "= ANY(array)": the planner then estimates each lookup
 * from the band's statistics (a few rows) instead of a default guess that can make it read the
 * whole table, once per probe in the leaks query.
 */
function candidates(probe: string, distance: string, dataset: string | undefined): string {
  const inDataset = dataset === undefined ? '' : ` AND c.dataset = ${dataset}`;
  return [48, 32, 16, 0]
    .map(
      (
        shift,
      ) => `SELECT c.id, c.split, c.phash FROM unnest(image_hash_band_ball(${band(probe, shift)}, ${distance} / 4)) AS v(band)
      JOIN images c ON ${band('c.phash', shift)} = v.band AND c.phash IS NOT NULL${inDataset}`,
    )
    .join('\n    UNION ');
}

// whether this consumer applied the event already, and the image's content (null once deleted)
const LOOKUP = `SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2::uuid) AS processed,
  (SELECT sha256 FROM images WHERE id = $3::uuid) AS sha256`;
// one statement, so one implicit transaction: the event is marked applied and its outcome written
// together, or (a duplicate marked meanwhile) neither; the image row may be gone, the mark is kept
const RECORD = `WITH mark AS (
    INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2::uuid)
    ON CONFLICT DO NOTHING RETURNING 1
  ), outcome AS (
    UPDATE images SET phash = $5::int8, analysis_status = $4, analysis_error = left($6, 1000), analysed_at = now()
    WHERE id = $3::uuid AND $4::text IS NOT NULL AND EXISTS (SELECT 1 FROM mark)
  )
  SELECT count(*)::int AS marked FROM mark`;
// a consumer's applied events older than $2 ms, oldest first, at most $3 of them; an event whose
// outbox row is still unsent may be published again, so its mark stays until the row is sent
const FORGET = `DELETE FROM processed_events WHERE (consumer, event_id) IN (
    SELECT p.consumer, p.event_id FROM processed_events p
    WHERE p.consumer = $1 AND p.processed_at < now() - make_interval(secs => $2::float8 / 1000)
      AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = p.event_id AND o.sent_at IS NULL)
    ORDER BY p.processed_at
    LIMIT $3
  )`;

// images no event will bring to this consumer any more: never analysed, created more than $2 ms
// ago, not marked (a created event's id is its image's id), and with every event of theirs sent
// (an unsent one is still on its way); oldest first
const STRANDED = `SELECT i.id FROM images i
  WHERE i.analysis_status IS NULL
    AND i.created_at < now() - make_interval(secs => $2::float8 / 1000)
    AND NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.consumer = $1 AND p.event_id = i.id)
    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.image_id = i.id AND o.sent_at IS NULL)
  ORDER BY i.created_at
  LIMIT $3`;

/** The worker's reads and writes; outages come out as the shared 503 error, which it retries later. */
export function analysisStore(pool: pg.Pool) {
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) =>
    withPostgres(() => pool.query<R>(prepared(text, values)));

  return {
    /**
     * Whether this consumer has applied this event already, and the content hash of the image to
     * analyse (undefined when it has been deleted since): one round trip.
     */
    async lookup(consumer: string, eventId: string, imageId: string): Promise<{ processed: boolean; sha256?: string }> {
      const { rows } = await query<{ processed: boolean; sha256: string | null }>(LOOKUP, [consumer, eventId, imageId]);
      const row = rows[0];
      return { processed: row?.processed === true, sha256: row?.sha256 ?? undefined };
    },

    /**
     * Records the event as applied and, atomically with it, its outcome on the image row (when
     * there is one). False when the event had been applied already (a duplicate racing this one):
     * then nothing is written.
     */
    async record(consumer: string, eventId: string, imageId: string, outcome?: AnalysisOutcome): Promise<boolean> {
      const { rows } = await query<{ marked: number }>(RECORD, [
        consumer,
        eventId,
        imageId,
        outcome?.status ?? null,
        outcome?.status === 'done' ? toSigned(outcome.hash) : null,
        outcome?.status === 'failed' ? outcome.error : null,
      ]);
      return rows[0]?.marked === 1;
    },

    /**
     * Up to `limit` images, oldest first, that this consumer has not analysed and whose created
     * event will not reach it: older than `olderThanMs`, with all their events sent.
     */
    async stranded(consumer: string, olderThanMs: number, limit: number): Promise<string[]> {
      const { rows } = await query<{ id: string }>(STRANDED, [consumer, olderThanMs, limit]);
      return rows.map((row) => row.id);
    },

    /**
     * Removes up to `limit` of this consumer's marks older than `olderThanMs`, oldest first, and
     * says how many went. Only for marks whose events can no longer be delivered: older than the
     * stream keeps messages, with the event's outbox row sent.
     */
    async forgetProcessed(consumer: string, olderThanMs: number, limit: number): Promise<number> {
      const { rowCount } = await query(FORGET, [consumer, olderThanMs, limit]);
      return rowCount ?? 0;
    },
  };
}

/** The worker's database access. */
export type AnalysisStore = ReturnType<typeof analysisStore>;

const STATE = 'SELECT id, dataset, phash, analysis_status, analysis_error FROM images WHERE id = $1::uuid';

/** The near-duplicate query ($1 hash, $2 distance, $3 id left out, $4 limit, $5 data set when scoped); exported for plan tests. */
export const similarSql = (
  scoped: boolean,
) => `SELECT ${COLUMNS}, bit_count((phash # $1::int8)::bit(64))::int AS distance
  FROM images
  WHERE id IN (SELECT id FROM (${candidates('$1::int8', '$2::int', scoped ? '$5' : undefined)}) AS c)
    AND bit_count((phash # $1::int8)::bit(64)) <= $2::int AND id <> $3::uuid
  ORDER BY distance, id
  LIMIT $4`;

/** The test and val images a leaks page looks at, in id order ($1 data set, $2 splits, $3 how many, $4 first id). */
const LEAK_PROBES = `SELECT id, phash FROM images
  WHERE dataset = $1 AND split = ANY($2::text[]) AND phash IS NOT NULL AND id >= $4::uuid
  ORDER BY id
  LIMIT $3`;

/**
 * The pairs among those images ($1 ids, $2 hashes, $3 data set, $4 distance, $5 limit, $6 and $7
 * the pair to start after); exported for plan tests.
 */
export const leaksSql = `SELECT t.id AS image_id, r.id AS train_id,
    bit_count((t.phash # r.phash)::bit(64))::int AS distance
  FROM unnest($1::uuid[], $2::int8[]) AS t(id, phash)
  CROSS JOIN LATERAL (
    SELECT c.id, c.phash FROM (${candidates('t.phash', '$4::int', '$3')}) AS c
    WHERE c.split = 'train' AND bit_count((t.phash # c.phash)::bit(64)) <= $4::int
  ) r
  WHERE t.id > $6::uuid OR r.id > $7::uuid
  ORDER BY t.id, r.id
  LIMIT $5`;

/** The smallest UUID: a position before every image. */
const FIRST = '00000000-0000-0000-0000-000000000000';
/** The largest UUID: after every train image of a test image, so the next page starts at the next one. */
const LAST = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

/**
 * How many test and val images one leaks page compares at most. Each costs an index lookup per
 * candidate band value (4 to 548), so a page answers in bounded time however rare leaks are; a page
 * may then hold fewer items than asked for, and nextCursor goes on from where it stopped.
 */
export const LEAK_SCAN = 200;

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
        error: row.analysis_error,
      };
    },

    /** Images within `distance` bits of the hash (in one data set, or all when none is given), nearest first. */
    async similar(
      hash: bigint,
      excludeId: string,
      distance: number,
      limit: number,
      dataset?: string,
    ): Promise<Match[]> {
      const values: unknown[] = [toSigned(hash), distance, excludeId, limit];
      if (dataset !== undefined) values.push(dataset);
      const { rows } = await query<ImageRow & { distance: number }>(similarSql(dataset !== undefined), values);
      return rows.map((row) => ({ distance: row.distance, image: toImage(row) }));
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
     * A keyset page of (test or val image, train image) pairs of one data set within `distance`
     * bits, in (image id, train id) order; `next` is set when more may follow.
     */
    async leaks(
      dataset: string,
      splits: string[],
      distance: number,
      limit: number,
      after: PairPosition = { imageId: FIRST, trainId: FIRST },
    ): Promise<{ items: Leak[]; next?: PairPosition }> {
      const { rows: probes } = await query<{ id: string; phash: string }>(LEAK_PROBES, [
        dataset,
        splits,
        LEAK_SCAN,
        after.imageId,
      ]);
      if (probes.length === 0) return { items: [] };
      const { rows: pairs } = await query<{ image_id: string; train_id: string; distance: number }>(leaksSql, [
        probes.map((probe) => probe.id),
        probes.map((probe) => probe.phash),
        dataset,
        distance,
        limit + 1,
        after.imageId,
        after.trainId,
      ]);
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
        if (image && train) items.push({ distance: pair.distance, image, train });
      }
      const last = page.at(-1);
      if (pairs.length > limit && last) return { items, next: { imageId: last.image_id, trainId: last.train_id } };
      // every pair of the images looked at is on this page; more images may follow them
      const lastProbe = probes.at(-1);
      if (probes.length === LEAK_SCAN && lastProbe) return { items, next: { imageId: lastProbe.id, trainId: LAST } };
      return { items };
    },
  };
}

/** Near-duplicate reads as routes see them. */
export type SimilarityReader = ReturnType<typeof similarityReader>;
