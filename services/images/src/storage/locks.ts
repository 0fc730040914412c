import type { Tx } from '../db/transaction.ts';

/**
 * Advisory lock spaces (the first key of PostgreSQL's two-key advisory locks). Writers hold a
 * shared lock on a file's key from just before its rename into place until their row commits;
 * whoever deletes files takes the exclusive lock first, so it never removes a file that a row is
 * about to point at.
 */
export const FILE_LOCKS = 0x696d67; // "img"
/** Held by the replica that sweeps, so two replicas never sweep at once. */
export const SWEEP_LOCK = [0x696d68, 1] as const;

/** The second lock key for a file: its hash's first 32 bits. Two files sharing it only wait on each other. */
export function fileKey(sha256: string): number {
  return Number.parseInt(sha256.slice(0, 8), 16) | 0;
}

/** SQL that takes one file's shared lock, to send with BEGIN in one round trip (the key is a number, never client text). */
export function lockFileSharedSql(sha256: string): string {
  return `SELECT pg_advisory_xact_lock_shared(${FILE_LOCKS}, ${fileKey(sha256)})`;
}

/** Takes the shared file locks for these hashes until the transaction ends. */
export async function lockFilesShared(tx: Tx, shas: Iterable<string>): Promise<void> {
  const keys = [...new Set([...shas].map(fileKey))];
  if (keys.length === 0) return;
  await tx.query({
    name: 'images_lock_files_shared',
    text: `SELECT count(pg_advisory_xact_lock_shared(${FILE_LOCKS}, k)) FROM unnest($1::int[]) AS k`,
    values: [keys],
  });
}

/** Tries the exclusive file locks for these hashes (until the transaction ends); returns the hashes it got. */
export async function tryLockFilesExclusive(tx: Tx, shas: string[]): Promise<string[]> {
  if (shas.length === 0) return [];
  const { rows } = await tx.query<{ sha: string }>({
    name: 'images_try_lock_files',
    text: `SELECT sha FROM unnest($1::text[]) AS sha
           WHERE pg_try_advisory_xact_lock(${FILE_LOCKS}, ('x' || substr(sha, 1, 8))::bit(32)::int)`,
    values: [shas],
  });
  return rows.map((row) => row.sha);
}
