import type pg from 'pg';
import { withTransaction } from '../db/transaction.ts';
import { tryLockFilesExclusive } from './locks.ts';
import type { Store } from './store.ts';

/**
 * Removes the files of these hashes that no row references. Each file's exclusive lock is taken
 * first, in its own statement, and the reference check runs after it (a later statement sees
 * every row committed before the lock was granted), so a file that a writer is about to point at
 * is either still locked (and skipped) or already referenced. Returns the hashes removed.
 */
export async function reclaimFiles(pool: pg.Pool, store: Store, shas: string[]): Promise<string[]> {
  if (shas.length === 0) return [];
  return withTransaction(pool, async (tx) => {
    const locked = await tryLockFilesExclusive(tx, [...new Set(shas)]);
    if (locked.length === 0) return [];
    const { rows } = await tx.query<{ sha: string }>({
      name: 'images_unreferenced',
      text: `SELECT sha FROM unnest($1::text[]) AS sha
             WHERE NOT EXISTS (SELECT 1 FROM images WHERE images.sha256 = sha)`,
      values: [locked],
    });
    const gone = rows.map((row) => row.sha);
    // removed while the locks are held, so no writer can slip a new reference in between
    for (const sha of gone) await store.remove(sha);
    return gone;
  });
}
