import type { ArchiveEntry, ArchiveLimits } from './archive-entry.ts';
import { IMAGE_EXTENSIONS, placeEntry } from './archive-path.ts';
import { displayName, isZlibError, readContentHead } from './source.ts';
import { tarEntries } from './tar-entries.ts';
import type {
  EncodedRecord,
  FileRef,
  FormatSource,
  ImportItem,
  RecordsOptions,
  SkipCause,
  SkippedEntry,
  Split,
} from './types.ts';
import { FormatError } from './types.ts';
import { zipEntries } from './zip-entries.ts';

/** The archive formats an ImageFolder import can come in. */
export type ArchiveKind = 'zip' | 'tar' | 'tar.gz';

/** How an ImageFolder archive is read. */
export interface ImageFolderOptions extends Partial<ArchiveLimits> {
  /** Split for entries whose path names none. */
  split?: Split;
  /** Accepted image extensions, lower case with the dot; IMAGE_EXTENSIONS when absent. */
  extensions?: readonly string[];
}

/** An opened ImageFolder archive. */
export interface ImageFolderSource extends FormatSource<ImportItem> {
  archive: ArchiveKind;
}

/** Defaults for the archive limits: 50 MiB per image, a million entries, 20 GiB in all. */
export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = Object.freeze({
  maxEntryBytes: 50 * 1024 * 1024,
  maxEntries: 1_000_000,
  maxTotalBytes: 20 * 1024 * 1024 * 1024,
});

const TAR_MAGIC = Buffer.from('ustar', 'latin1');
const TAR_MAGIC_AT = 257;

/** Tells zip, tar and tar.gz apart by their first bytes (decompressed, for gzip). */
export function archiveKind(head: Uint8Array, gzip: boolean): ArchiveKind | undefined {
  if (!gzip && head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b) {
    // local file header, or the end record of an empty archive
    if ((head[2] === 0x03 && head[3] === 0x04) || (head[2] === 0x05 && head[3] === 0x06)) return 'zip';
  }
  const magic = head.subarray(TAR_MAGIC_AT, TAR_MAGIC_AT + TAR_MAGIC.length);
  if (Buffer.from(magic).equals(TAR_MAGIC)) return gzip ? 'tar.gz' : 'tar';
  return undefined;
}

/**
 * Opens an ImageFolder archive (zip, tar or tar.gz, told apart by content). For zip the total is
 * counted from the central directory; a tar has to be read to be counted, so its total is unknown.
 */
export async function openImageFolder(file: FileRef, options: ImageFolderOptions = {}): Promise<ImageFolderSource> {
  const name = displayName(file);
  const { head, gzip } = await readContentHead(file.path, 512).catch((error: unknown) => {
    if (!isZlibError(error)) throw error;
    throw new FormatError(`Archive "${name}" is not valid gzip: ${error.message}`, { cause: error });
  });
  const archive = archiveKind(head, gzip);
  if (archive === undefined) {
    throw new FormatError(`File "${name}" is not a zip, tar or tar.gz archive`);
  }
  const limits: ArchiveLimits = {
    maxEntryBytes: options.maxEntryBytes ?? DEFAULT_ARCHIVE_LIMITS.maxEntryBytes,
    maxEntries: options.maxEntries ?? DEFAULT_ARCHIVE_LIMITS.maxEntries,
    maxTotalBytes: options.maxTotalBytes ?? DEFAULT_ARCHIVE_LIMITS.maxTotalBytes,
  };
  const extensions = new Set((options.extensions ?? IMAGE_EXTENSIONS).map((extension) => extension.toLowerCase()));
  const entries = () =>
    archive === 'zip' ? zipEntries(file.path, name, limits) : tarEntries(file.path, name, gzip, limits);
  const total = archive === 'zip' ? await countZipImages(file.path, name, limits, extensions) : undefined;
  return {
    format: 'imagefolder',
    archive,
    total,
    records: (recordOptions: RecordsOptions = {}) =>
      readEntries(entries(), limits, extensions, options.split, recordOptions.from ?? 0),
  };
}

async function countZipImages(
  path: string,
  name: string,
  limits: ArchiveLimits,
  extensions: ReadonlySet<string>,
): Promise<number> {
  // Only the central directory is read: no entry data
  let count = 0;
  for await (const entry of zipEntries(path, name, limits)) {
    if (entry.type === 'file' && entry.size <= limits.maxEntryBytes && placeEntry(entry.path, extensions).ok) count++;
  }
  return count;
}

async function* readEntries(
  entries: AsyncGenerator<ArchiveEntry, void, undefined>,
  limits: ArchiveLimits,
  extensions: ReadonlySet<string>,
  split: Split | undefined,
  from: number,
): AsyncGenerator<EncodedRecord | SkippedEntry, void, undefined> {
  for await (const entry of entries) {
    if (entry.index < from) continue;
    const quoted = `Archive entry "${entry.path}"`;
    if (entry.type !== 'file') {
      yield skipped(entry, ...typeSkip(entry, quoted));
      continue;
    }
    const place = placeEntry(entry.path, extensions);
    if (!place.ok) {
      yield skipped(entry, place.cause, place.reason, place.benign);
      continue;
    }
    if (entry.size > limits.maxEntryBytes) {
      const reason = `${quoted} is ${entry.size} bytes, more than the limit of ${limits.maxEntryBytes}; skipped`;
      yield skipped(entry, 'too-large', reason);
      continue;
    }
    const content = await entry.read();
    if (!content.ok) {
      yield skipped(entry, content.cause, content.reason);
      continue;
    }
    yield {
      kind: 'encoded',
      index: entry.index,
      label: place.label,
      split: place.split ?? split,
      name: entry.path,
      bytes: content.bytes,
    };
  }
}

function typeSkip(entry: ArchiveEntry, quoted: string): [SkipCause, string, boolean] {
  switch (entry.type) {
    case 'directory':
      return ['directory', `${quoted} is a directory; skipped`, true];
    case 'symlink':
      return ['link', `${quoted} is a symbolic link; skipped`, false];
    case 'hardlink':
      return ['link', `${quoted} is a hard link; skipped`, false];
    default:
      return ['special', `${quoted} is a device, FIFO or other special file; skipped`, false];
  }
}

function skipped(entry: ArchiveEntry, cause: SkipCause, reason: string, benign = false): SkippedEntry {
  return { kind: 'skipped', index: entry.index, name: entry.path, cause, benign, reason };
}
