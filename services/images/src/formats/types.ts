// Shapes shared by the data set readers. Nothing here touches the database or HTTP.

/** The data set formats an import can be in. */
export type FormatName = 'idx' | 'cifar10' | 'imagefolder';

/** The split a record belongs to; 'validation' and 'valid' folders map to 'val'. */
export type Split = 'train' | 'test' | 'val';

/** An uploaded file on disk; `name` is the client's file name (defaults to the path's base name). */
export interface FileRef {
  path: string;
  name?: string;
}

/** What every record carries: its position in the source, which stays the same on a re-run. */
interface RecordBase {
  index: number;
  label: string;
  split?: Split;
  name?: string;
}

/** Raw pixels from IDX or CIFAR-10, row-major, channels interleaved (grey or RGB). */
export interface PixelsRecord extends RecordBase {
  kind: 'pixels';
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
}

/** An already encoded image file taken from an archive, bytes as stored there. */
export interface EncodedRecord extends RecordBase {
  kind: 'encoded';
  name: string;
  bytes: Buffer;
}

/** An image to store. */
export type ImportRecord = PixelsRecord | EncodedRecord;

/** Why an archive entry was left out. */
export type SkipCause =
  | 'directory'
  | 'hidden'
  | 'link'
  | 'special'
  | 'unsafe-path'
  | 'layout'
  | 'extension'
  | 'too-large'
  | 'corrupt'
  | 'unsupported';

/**
 * An archive entry that was left out, with the reason. `benign` is true for entries every archive
 * has (directories, .DS_Store, __MACOSX/): they are not failures and need not be reported.
 */
export interface SkippedEntry {
  kind: 'skipped';
  index: number;
  name: string;
  cause: SkipCause;
  benign: boolean;
  reason: string;
}

/** What a reader yields. */
export type ImportItem = ImportRecord | SkippedEntry;

/** Options every reader's `records()` takes. */
export interface RecordsOptions {
  /** Records (or entries) before this index are read past without being yielded: resuming a job. */
  from?: number;
}

/** An opened data set: headers checked, nothing held open until `records()` is iterated. */
export interface FormatSource<T extends ImportItem = ImportItem> {
  format: FormatName;
  /** How many records to expect, when the format says so up front. */
  total: number | undefined;
  /** Streams the records; breaking out of the loop closes the files. */
  records(options?: RecordsOptions): AsyncGenerator<T, void, undefined>;
}

/**
 * Malformed input: wrong magic, truncated records, a corrupt archive. The message says what is
 * wrong and is safe to show to the client; statusCode and code fit the service's error handler.
 */
export class FormatError extends Error {
  readonly statusCode = 422;
  readonly code = 'FORMAT_INVALID';
  readonly reason: string;
  /** The record or entry the problem was found at, when there is one. */
  readonly index: number | undefined;

  constructor(reason: string, options: { index?: number; cause?: unknown } = {}) {
    super(reason, { cause: options.cause });
    this.name = 'FormatError';
    this.reason = reason;
    this.index = options.index;
  }
}
