import { createHash } from 'node:crypto';
import { httpError } from '@berth/service-kit';

/** Where the next page starts: after this id, or for a ranked search after this (rank, id). */
export interface Position {
  id: number;
  /** The rank exactly as PostgreSQL printed it, so it compares equal when sent back as a real. */
  rank?: string;
}

const VERSION = 1;
const MAX_ID = 2_147_483_647;
const RANK = /^\d+(\.\d+)?(e-?\d+)?$/;

/** A short digest of the filters a page was cut with; a cursor only continues the query it came from. */
export function queryKey(filters: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(filters)).digest('base64url').slice(0, 10);
}

/** An opaque cursor: base64url JSON of [version, query key, id, rank?]. Clients must not build their own. */
export function encodeCursor(key: string, position: Position): string {
  const parts: unknown[] = [VERSION, key, position.id];
  if (position.rank !== undefined) parts.push(position.rank);
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

const NOT_OURS = 'is not a cursor this API handed out; use nextCursor from the previous page';

function invalid(cursor: string, why: string = NOT_OURS) {
  const shown = cursor.length > 40 ? `${cursor.slice(0, 37)}...` : cursor;
  return httpError(400, 'INVALID_CURSOR', `Query parameter "cursor" ${why} (got "${shown}")`);
}

/** Reads a cursor back; anything this API did not hand out for the same query is a 400 naming the cursor. */
export function decodeCursor(cursor: string, key: string, ranked: boolean): Position {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid(cursor);
  }
  if (!Array.isArray(parts) || parts[0] !== VERSION || typeof parts[1] !== 'string') {
    throw invalid(cursor);
  }
  const [, cursorKey, id, rank] = parts;
  if (cursorKey !== key) {
    throw invalid(
      cursor,
      'belongs to a different query; repeat the same q, category, lang and flags or drop the cursor',
    );
  }
  const rankOk = ranked ? typeof rank === 'string' && RANK.test(rank) : rank === undefined;
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID || !rankOk || parts.length > 4) {
    throw invalid(cursor);
  }
  return ranked ? { id, rank: rank as string } : { id };
}
