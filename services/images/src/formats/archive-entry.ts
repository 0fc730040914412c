import type { SkipCause } from './types.ts';

/** What kind of thing an archive entry is; only files are read. */
export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'special';

/** The bytes of an entry, or why they could not be had. */
export type EntryContent = { ok: true; bytes: Buffer } | { ok: false; cause: SkipCause; reason: string };

/** One entry of a tar or zip archive, as the ImageFolder reader sees it. */
export interface ArchiveEntry {
  /** Position in the archive, counting every entry. */
  index: number;
  path: string;
  type: EntryType;
  /** Size the archive declares; reading never yields more. */
  size: number;
  /** Reads the whole entry; call only after checking `size` against the limit. */
  read(): Promise<EntryContent>;
}

/** Limits that keep a hostile archive from costing unbounded memory or time. */
export interface ArchiveLimits {
  /** Largest entry read into memory; bigger entries are skipped unread. */
  maxEntryBytes: number;
  /** More entries than this fails the archive. */
  maxEntries: number;
  /** More uncompressed bytes than this, over all entries passed through, fails the archive. */
  maxTotalBytes: number;
}
