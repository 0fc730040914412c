import { withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import { toSigned } from '../analysis/dhash.ts';
import { prepared } from './transaction.ts';

/** A verified near-duplicate of an analysed image, in its data set. */
export interface PairRecord {
  otherId: string;
  score: number;
  distance: number;
}

/**
 * What the worker found out about an image: its difference hash (the API's `hash`) and its
 * near-duplicates, or why it could not be decoded.
 */
export type AnalysisOutcome =
  | { status: 'done'; hash: bigint; pairs: PairRecord[] }
  | { status: 'failed'; error: string };

/** One event to record: its image and, when the image was there to analyse, the outcome. */
export interface EventRecord {
  eventId: string;
  imageId: string;
  outcome?: AnalysisOutcome;
}

/** An image's signature to store. */
export interface SignatureRecord {
  imageId: string;
  signature: Buffer;
}

/** A signed image as the worker's candidate index loads it, with its signing transaction. */
export interface SignedRow {
  id: string;
  signature: Buffer;
  xid: bigint;
}

/** Where a read of signed images goes on from: a transaction id and an image id, both exclusive of less. */
export interface SignedCursor {
  /** Rows of transactions from this one on; the oldest one still running at the last read. */
  xid: bigint;
  /** Rows after this id (pages within one read). */
  afterId: string;
  /** Rows read already among those transactions, left out. */
  known: string[];
}

// for each (event, image): whether this consumer applied the event already, and the image's
// content and data set (null once deleted)
const LOOKUP = `SELECT t.event_id,
    EXISTS (SELECT 1 FROM processed_events p WHERE p.consumer = $1 AND p.event_id = t.event_id) AS processed,
    i.sha256, i.dataset
  FROM unnest($2::uuid[], $3::uuid[]) AS t(event_id, image_id)
  LEFT JOIN images i ON i.id = t.image_id`;

// the first step: signatures of images not analysed yet, with the signing
// transaction; committed before the batch looks for candidates, so of two near-duplicates signed
// at once by two replicas, at least one sees the other
const SIGN = `INSERT INTO image_signatures (image_id, dataset, signature)
  SELECT i.id, i.dataset, t.signature FROM unnest($1::uuid[], $2::bytea[]) AS t(image_id, signature)
  JOIN images i ON i.id = t.image_id AND i.analysis_status IS NULL
  ON CONFLICT (image_id) DO UPDATE SET signature = EXCLUDED.signature, signed_xid = pg_current_xact_id()
  RETURNING image_id, signed_xid::text AS xid`;

// a data set's signed images of transactions from $2 on, after id $3 and not among $4, in id
// order, $5 of them; with the oldest transaction still running as this statement sees it, from
// which the next read goes on
const SIGNED = `WITH snapshot AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin)
  SELECT s.xmin, r.id, r.signature, r.xid FROM snapshot s LEFT JOIN LATERAL (
    SELECT image_id AS id, signature, signed_xid::text AS xid FROM image_signatures
    WHERE dataset = $1 AND signed_xid >= $2::text::xid8 AND image_id > $3::uuid
      AND NOT (image_id = ANY($4::uuid[]))
    ORDER BY image_id
    LIMIT $5
  ) r ON true`;

// the second step, one statement and so one transaction: each event is marked applied and its
// outcome and pairs written together, or (a duplicate marked meanwhile) none of it. An image row
// may be gone (its mark is kept); a pair whose other image is gone is left out
const RECORD = `WITH input AS (
    SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::int8[], $6::text[])
      AS t(event_id, image_id, status, phash, error)
  ), mark AS (
    INSERT INTO processed_events (consumer, event_id) SELECT DISTINCT $1, event_id FROM input
    ON CONFLICT DO NOTHING RETURNING event_id
  ), outcome AS (
    UPDATE images i SET phash = t.phash, analysis_status = t.status, analysis_error = left(t.error, 1000),
      analysed_at = now()
    FROM input t JOIN mark m ON m.event_id = t.event_id
    WHERE i.id = t.image_id AND t.status IS NOT NULL
    RETURNING i.id, i.dataset
  ), paired AS (
    INSERT INTO image_pairs (dataset, image_id, other_id, score, distance)
    SELECT o.dataset, p.image_id, p.other_id, p.score, p.distance
    FROM unnest($7::uuid[], $8::uuid[], $9::uuid[], $10::real[], $11::int2[])
      AS p(probe_id, image_id, other_id, score, distance)
    JOIN outcome o ON o.id = p.probe_id
    WHERE EXISTS (SELECT 1 FROM images x WHERE x.id = p.image_id)
      AND EXISTS (SELECT 1 FROM images x WHERE x.id = p.other_id)
    ON CONFLICT DO NOTHING
  )
  SELECT event_id FROM mark`;

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

/** The smallest UUID: where a read's pages start. */
export const FIRST_ID = '00000000-0000-0000-0000-000000000000';

/** The worker's reads and writes; outages come out as the shared 503 error, which it retries later. */
export function analysisStore(pool: pg.Pool) {
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) =>
    withPostgres(() => pool.query<R>(prepared(text, values)));

  return {
    /**
     * For each event: whether this consumer has applied it already, and the content hash and data
     * set of its image (undefined when the image has been deleted since). One round trip.
     */
    async lookup(
      consumer: string,
      events: Array<{ eventId: string; imageId: string }>,
    ): Promise<Map<string, { processed: boolean; sha256?: string; dataset?: string }>> {
      const { rows } = await query<{
        event_id: string;
        processed: boolean;
        sha256: string | null;
        dataset: string | null;
      }>(LOOKUP, [consumer, events.map((event) => event.eventId), events.map((event) => event.imageId)]);
      return new Map(
        rows.map((row) => [
          row.event_id,
          { processed: row.processed, sha256: row.sha256 ?? undefined, dataset: row.dataset ?? undefined },
        ]),
      );
    },

    /** Stores the signatures of images not analysed yet (one statement); the ones stored, with their transaction. */
    async sign(records: SignatureRecord[]): Promise<Array<{ id: string; xid: bigint }>> {
      const { rows } = await query<{ image_id: string; xid: string }>(SIGN, [
        records.map((r) => r.imageId),
        records.map((r) => r.signature),
      ]);
      return rows.map((row) => ({ id: row.image_id, xid: BigInt(row.xid) }));
    },

    /**
     * A page of a data set's signed images from `cursor` on, in id order, and the oldest
     * transaction still running when it was read: every row of an older one was in it.
     */
    async signed(dataset: string, limit: number, cursor: SignedCursor): Promise<{ rows: SignedRow[]; xmin: bigint }> {
      const { rows } = await query<{ id: string | null; signature: Buffer; xid: string; xmin: string }>(SIGNED, [
        dataset,
        cursor.xid.toString(),
        cursor.afterId,
        cursor.known,
        limit,
      ]);
      const xmin = BigInt(rows[0]?.xmin ?? 0);
      const found = rows.filter((row) => row.id !== null);
      return {
        rows: found.map((row) => ({ id: row.id as string, signature: row.signature, xid: BigInt(row.xid) })),
        xmin,
      };
    },

    /** The stored signatures of these images (the ones still there). */
    async signatures(ids: string[]): Promise<Map<string, Buffer>> {
      if (ids.length === 0) return new Map();
      const { rows } = await query<{ id: string; signature: Buffer }>(
        'SELECT image_id AS id, signature FROM image_signatures WHERE image_id = ANY($1::uuid[])',
        [ids],
      );
      return new Map(rows.map((row) => [row.id, row.signature]));
    },

    /**
     * Records the events as applied and, atomically with each, its outcome on the image row (when
     * there is one) and its pairs, both ways: one statement for the batch. Returns the events this
     * call marked; an event marked before (a duplicate racing this one) is left out, and nothing
     * of it is written.
     */
    async record(consumer: string, records: EventRecord[]): Promise<Set<string>> {
      const pairs = {
        probe: [] as string[],
        image: [] as string[],
        other: [] as string[],
        score: [] as number[],
        distance: [] as number[],
      };
      for (const r of records) {
        if (r.outcome?.status !== 'done') continue;
        for (const pair of r.outcome.pairs) {
          for (const [image, other] of [
            [r.imageId, pair.otherId],
            [pair.otherId, r.imageId],
          ]) {
            pairs.probe.push(r.imageId);
            pairs.image.push(image as string);
            pairs.other.push(other as string);
            pairs.score.push(pair.score);
            pairs.distance.push(pair.distance);
          }
        }
      }
      const { rows } = await query<{ event_id: string }>(RECORD, [
        consumer,
        records.map((r) => r.eventId),
        records.map((r) => r.imageId),
        records.map((r) => r.outcome?.status ?? null),
        records.map((r) => (r.outcome?.status === 'done' ? toSigned(r.outcome.hash) : null)),
        records.map((r) => (r.outcome?.status === 'failed' ? r.outcome.error : null)),
        pairs.probe,
        pairs.image,
        pairs.other,
        pairs.score,
        pairs.distance,
      ]);
      return new Set(rows.map((row) => row.event_id));
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
