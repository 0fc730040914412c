import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import { fromSigned, hammingDistance, toSigned } from '../analysis/dhash.ts';
import { type Signature, signatureKeys, unpackSignature } from '../analysis/signature.ts';
import { verificationScore } from '../analysis/verify.ts';
import { COLUMNS, type Image, type ImageRow, toImage } from './images.ts';
import { prepared } from './transaction.ts';

/**
 * What the worker found out about an image: its difference hash (the API's `hash`) and its
 * near-duplicate signature with its candidate keys, or why it could not be decoded.
 */
export type AnalysisOutcome =
  | { status: 'done'; hash: bigint; signature: Buffer; keys: bigint[] }
  | { status: 'failed'; error: string };

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

// whether this consumer applied the event already, and the image's content (null once deleted)
const LOOKUP = `SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2::uuid) AS processed,
  (SELECT sha256 FROM images WHERE id = $3::uuid) AS sha256`;
// one statement, so one implicit transaction: the event is marked applied and its outcome written
// together, or (a duplicate marked meanwhile) neither; the image row may be gone, the mark is kept
const RECORD = `WITH mark AS (
    INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2::uuid)
    ON CONFLICT DO NOTHING RETURNING 1
  ), outcome AS (
    UPDATE images SET phash = $5::int8, signature = $7::bytea, analysis_status = $4,
      analysis_error = left($6, 1000), analysed_at = now()
    WHERE id = $3::uuid AND $4::text IS NOT NULL AND EXISTS (SELECT 1 FROM mark)
    RETURNING id
  ), keyed AS (
    INSERT INTO image_keys (key, image_id)
    SELECT DISTINCT k, o.id FROM outcome o CROSS JOIN unnest($8::int8[]) AS k
    ON CONFLICT DO NOTHING
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
        outcome?.status === 'done' ? outcome.signature : null,
        outcome?.status === 'done' ? outcome.keys.map((key) => key.toString()) : [],
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

const STATE = 'SELECT id, dataset, phash, signature, analysis_status, analysis_error FROM images WHERE id = $1::uuid';

/**
 * The candidates of one image: every analysed image sharing a key with it ($1 keys), itself ($2)
 * left out, in one data set ($4) or all, with their signatures and difference-hash distance ($3).
 */
const similarCandidates = (scoped: boolean) => `SELECT ${COLUMNS}, signature,
    bit_count((phash # $3::int8)::bit(64))::int AS distance
  FROM images
  WHERE id IN (SELECT k.image_id FROM image_keys k WHERE k.key = ANY($1::int8[]))
    AND id <> $2::uuid AND signature IS NOT NULL${scoped ? ' AND dataset = $4' : ''}`;

/** The test and val images a leaks page looks at, in id order ($1 data set, $2 splits, $3 how many, $4 first id). */
const LEAK_PROBES = `SELECT id, phash, signature FROM images
  WHERE dataset = $1 AND split = ANY($2::text[]) AND signature IS NOT NULL AND id >= $4::uuid
  ORDER BY id
  LIMIT $3`;

/** For each probe (by its index, $1, one row per key $2), the train images of data set $3 sharing a key with it. */
export const leakCandidatesSql = `SELECT DISTINCT p.probe, c.id, c.phash
  FROM unnest($1::int[], $2::int8[]) AS p(probe, key)
  JOIN image_keys k ON k.key = p.key
  JOIN images c ON c.id = k.image_id
  WHERE c.dataset = $3 AND c.split = 'train' AND c.signature IS NOT NULL`;

/** The smallest UUID: a position before every image. */
const FIRST = '00000000-0000-0000-0000-000000000000';
/** The largest UUID: after every train image of a test image, so the next page starts at the next one. */
const LAST = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

/**
 * How many test and val images one leaks page compares at most. Each costs a key lookup per key
 * and a verification per candidate, so a page answers in bounded time however rare leaks are; a
 * page may then hold fewer items than asked for, and nextCursor goes on from where it stopped.
 */
export const LEAK_SCAN = 200;

/** What near-duplicate reads are filtered by: the verification threshold, and at most this many dHash bits. */
export interface Closeness {
  threshold: number;
  distance: number;
}

const hashDistance = (a: string, b: string) => hammingDistance(fromSigned(a), fromSigned(b));

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

    /**
     * The verified near-duplicates of an analysed image (in one data set, or all when none is
     * given): highest score first, then fewest differing hash bits.
     */
    async similar(
      probe: { id: string; hash: bigint; signature: Signature },
      closeness: Closeness,
      limit: number,
      dataset?: string,
    ): Promise<Match[]> {
      const values: unknown[] = [
        signatureKeys(probe.signature).map((key) => key.toString()),
        probe.id,
        toSigned(probe.hash),
      ];
      if (dataset !== undefined) values.push(dataset);
      const { rows } = await query<ImageRow & { signature: Buffer; distance: number }>(
        similarCandidates(dataset !== undefined),
        values,
      );
      const matches: Match[] = [];
      for (const row of rows) {
        if (row.distance > closeness.distance) continue;
        const score = verificationScore(probe.signature, unpackSignature(row.signature), closeness.threshold);
        if (score >= closeness.threshold) matches.push({ distance: row.distance, score, image: toImage(row) });
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
     * A keyset page of verified (test or val image, train image) pairs of one data set, in
     * (image id, train id) order; `next` is set when more may follow.
     */
    async leaks(
      dataset: string,
      splits: string[],
      closeness: Closeness,
      limit: number,
      after: PairPosition = { imageId: FIRST, trainId: FIRST },
    ): Promise<{ items: Leak[]; next?: PairPosition }> {
      const { rows: probes } = await query<{ id: string; phash: string; signature: Buffer }>(LEAK_PROBES, [
        dataset,
        splits,
        LEAK_SCAN,
        after.imageId,
      ]);
      if (probes.length === 0) return { items: [] };
      const signatures = probes.map((probe) => unpackSignature(probe.signature));
      const probeIndex: number[] = [];
      const keys: string[] = [];
      signatures.forEach((signature, i) => {
        for (const key of signatureKeys(signature)) {
          probeIndex.push(i);
          keys.push(key.toString());
        }
      });
      const { rows: candidates } = await query<{ probe: number; id: string; phash: string }>(leakCandidatesSql, [
        probeIndex,
        keys,
        dataset,
      ]);
      const wanted = [...new Set(candidates.map((candidate) => candidate.id))];
      const { rows: trainRows } = wanted.length
        ? await query<{ id: string; signature: Buffer }>(
            'SELECT id, signature FROM images WHERE id = ANY($1::uuid[]) AND signature IS NOT NULL',
            [wanted],
          )
        : { rows: [] };
      const trainSignatures = new Map(trainRows.map((row) => [row.id, unpackSignature(row.signature)]));
      const pairs: Array<{ imageId: string; trainId: string; distance: number; score: number }> = [];
      for (const candidate of candidates) {
        const probe = probes[candidate.probe];
        const probeSignature = signatures[candidate.probe];
        const trainSignature = trainSignatures.get(candidate.id);
        if (!probe || !probeSignature || !trainSignature) continue;
        if (probe.id === after.imageId && candidate.id <= after.trainId) continue;
        const distance = hashDistance(probe.phash, candidate.phash);
        if (distance > closeness.distance) continue;
        const score = verificationScore(probeSignature, trainSignature, closeness.threshold);
        if (score >= closeness.threshold) pairs.push({ imageId: probe.id, trainId: candidate.id, distance, score });
      }
      // UUIDs in lower case: text order is PostgreSQL's uuid order
      const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
      pairs.sort((a, b) => order(a.imageId, b.imageId) || order(a.trainId, b.trainId));
      const page = pairs.slice(0, limit);
      const ids = [...new Set(page.flatMap((pair) => [pair.imageId, pair.trainId]))];
      const { rows } = ids.length
        ? await query<ImageRow>(`SELECT ${COLUMNS} FROM images WHERE id = ANY($1::uuid[])`, [ids])
        : { rows: [] };
      const byId = new Map(rows.map((row) => [row.id, toImage(row)]));
      const items: Leak[] = [];
      for (const pair of page) {
        const image = byId.get(pair.imageId);
        const train = byId.get(pair.trainId);
        // an image deleted between the reads drops out of the page
        if (image && train) items.push({ distance: pair.distance, score: pair.score, image, train });
      }
      const last = page.at(-1);
      if (pairs.length > limit && last) return { items, next: { imageId: last.imageId, trainId: last.trainId } };
      // every pair of the images looked at is on this page; more images may follow them
      const lastProbe = probes.at(-1);
      if (probes.length === LEAK_SCAN && lastProbe) return { items, next: { imageId: lastProbe.id, trainId: LAST } };
      return { items };
    },
  };
}

/** Near-duplicate reads as routes see them. */
export type SimilarityReader = ReturnType<typeof similarityReader>;
