import { createHash } from 'node:crypto';
import { httpError } from '@berth/service-kit';

/** Where the next page starts: after this image id. */
export interface Position {
  id: string;
}

const VERSION = 1;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A short digest of the filters a page was cut with; a cursor only continues the query it came from. */
export function queryKey(filters: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(filters)).digest('base64url').slice(0, 10);
}

/** An opaque cursor: base64url JSON of [version, query key, last id]. Clients must not build their own. */
export function encodeCursor(key: string, position: Position): string {
  return Buffer.from(JSON.stringify([VERSION, key, position.id])).toString('base64url');
}

function invalid(cursor: string, why: string) {
  const shown = cursor.length > 40 ? `${cursor.slice(0, 37)}...` : cursor;
  return httpError(400, 'INVALID_CURSOR', `Query parameter "cursor" ${why} (got "${shown}")`);
}

const NOT_OURS = 'is not a cursor this API handed out; use nextCursor from the previous page';

/** Reads a cursor back; anything this API did not hand out for the same query is a 400 naming the cursor. */
export function decodeCursor(cursor: string, key: string): Position {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid(cursor, NOT_OURS);
  }
  if (!Array.isArray(parts) || parts.length !== 3 || parts[0] !== VERSION || typeof parts[1] !== 'string') {
    throw invalid(cursor, NOT_OURS);
  }
  const [, cursorKey, id] = parts;
  if (cursorKey !== key) {
    throw invalid(cursor, 'belongs to a different query; repeat the same dataset, label, split and tag or drop it');
  }
  if (typeof id !== 'string' || !UUID.test(id)) throw invalid(cursor, NOT_OURS);
  return { id };
}
