import { ByteReader } from './byte-reader.ts';
import { labelTable, truncatedRecord } from './records.ts';
import {
  displayName,
  gzipError,
  isGzip,
  isZlibError,
  openInput,
  readContentHead,
  readGzipSize,
  readRawHead,
} from './source.ts';
import { splitFromFileName } from './splits.ts';
import { type FileRef, FormatError, type FormatSource, type PixelsRecord, type Split } from './types.ts';

/** CIFAR-10's own class names, in label order. */
export const CIFAR10_CLASSES: readonly string[] = Object.freeze([
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
]);

const SIDE = 32;
const PLANE = SIDE * SIDE;
/** One record: a label byte, then the red, green and blue planes of a 32×32 image. */
export const CIFAR10_RECORD_BYTES = 1 + 3 * PLANE;
const MAX_META_BYTES = 64 * 1024;

/** The batch files of one import and, optionally, the class names file that goes with them. */
export interface CifarInput {
  batches: readonly FileRef[];
  /** batches.meta.txt: one class name per line. */
  meta?: FileRef;
}

/** How CIFAR-10 records are labelled. */
export interface CifarOptions {
  /** Class names to use instead of the meta file or CIFAR-10's own. */
  classNames?: readonly string[];
  /** Overrides the split implied by the batch names (data_batch_* → train, test_batch → test). */
  split?: Split;
}

/** An opened CIFAR-10 import; `classNames` are the labels in use. */
export interface CifarSource extends FormatSource<PixelsRecord> {
  classNames: readonly string[];
}

/** Parses batches.meta.txt: one class name per line, trailing blank lines ignored. */
export function parseClassNames(text: string, name: string): string[] {
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new FormatError(`Class names file "${name}" names no classes`);
  if (lines.length > 256) {
    throw new FormatError(`Class names file "${name}" names ${lines.length} classes, more than a label byte can hold`);
  }
  const seen = new Map<string, number>();
  lines.forEach((line, at) => {
    if (line === '') throw new FormatError(`Class names file "${name}" has an empty line ${at + 1}`);
    const before = seen.get(line);
    if (before !== undefined) {
      throw new FormatError(`Class names file "${name}" names "${line}" twice (lines ${before + 1} and ${at + 1})`);
    }
    seen.set(line, at);
  });
  return lines;
}

interface OpenedBatch {
  file: FileRef;
  name: string;
  split: Split | undefined;
  /** Known for plain batches; gzip ones are counted by reading them. */
  count: number | undefined;
}

/**
 * Opens CIFAR-10 binary batches (plain or gzip). Plain batches are checked to hold whole
 * records before anything is read; records stream one batch after another, planar RGB turned
 * into interleaved RGB.
 */
export async function openCifar(input: CifarInput, options: CifarOptions = {}): Promise<CifarSource> {
  if (input.batches.length === 0) throw new FormatError('A CIFAR-10 import needs at least one batch file');
  const classNames = options.classNames ?? (input.meta ? await readClassNames(input.meta) : CIFAR10_CLASSES);
  const labels = labelTable(classNames);
  const batches: OpenedBatch[] = [];
  let total: number | undefined = 0;
  for (const file of input.batches) {
    const name = displayName(file);
    const { count, exact } = await countRecords(file, name);
    total = total === undefined || count === undefined ? undefined : total + count;
    batches.push({ file, name, split: options.split ?? splitFromFileName(name), count: exact ? count : undefined });
  }
  return {
    format: 'cifar10',
    total,
    classNames: labels,
    records: (recordOptions = {}) => readBatches(batches, labels, recordOptions.from ?? 0),
  };
}

async function readClassNames(meta: FileRef): Promise<string[]> {
  const name = displayName(meta);
  const { head } = await readContentHead(meta.path, MAX_META_BYTES + 1);
  if (head.length > MAX_META_BYTES) {
    throw new FormatError(`Class names file "${name}" is larger than ${MAX_META_BYTES} bytes`);
  }
  return parseClassNames(head.toString('utf8'), name);
}

// Exact for plain files; for gzip, the size field of the trailer when it fits whole records
async function countRecords(file: FileRef, name: string): Promise<{ count: number | undefined; exact: boolean }> {
  const { head, size } = await readRawHead(file.path, 2);
  const what = `CIFAR-10 batch "${name}"`;
  if (size === 0) throw new FormatError(`${what} is empty`);
  if (isGzip(head)) {
    const trailer = await readGzipSize(file.path, size);
    const whole = trailer !== undefined && trailer > 0 && trailer % CIFAR10_RECORD_BYTES === 0;
    return { count: whole ? trailer / CIFAR10_RECORD_BYTES : undefined, exact: false };
  }
  const whole = Math.floor(size / CIFAR10_RECORD_BYTES);
  const rest = size - whole * CIFAR10_RECORD_BYTES;
  if (rest !== 0) throw truncatedRecord(what, whole, rest, CIFAR10_RECORD_BYTES);
  return { count: whole, exact: true };
}

async function* readBatches(
  batches: readonly OpenedBatch[],
  labels: readonly string[],
  from: number,
): AsyncGenerator<PixelsRecord, void, undefined> {
  let base = 0;
  for (const batch of batches) {
    // A resumed job passes over whole plain batches without opening them
    if (batch.count !== undefined && base + batch.count <= from) base += batch.count;
    else base = yield* readBatch(batch, base, labels, from);
  }
}

// Yields the batch's records and returns the index after its last one
async function* readBatch(
  batch: OpenedBatch,
  base: number,
  labels: readonly string[],
  from: number,
): AsyncGenerator<PixelsRecord, number, undefined> {
  const what = `CIFAR-10 batch "${batch.name}"`;
  const reader = new ByteReader((await openInput(batch.file.path)).stream);
  let record = 0;
  try {
    while (!(await reader.atEnd())) {
      const bytes = await reader.read(CIFAR10_RECORD_BYTES);
      if (bytes.length < CIFAR10_RECORD_BYTES) {
        throw truncatedRecord(what, record, bytes.length, CIFAR10_RECORD_BYTES);
      }
      const label = bytes[0] as number;
      if (label >= labels.length) {
        throw new FormatError(
          `${what} gives record ${record} label ${label}, but there are only ${labels.length} class names`,
          { index: base + record },
        );
      }
      const index = base + record;
      record++;
      if (index < from) continue;
      yield {
        kind: 'pixels',
        index,
        label: labels[label] as string,
        split: batch.split,
        name: `${batch.name}#${record - 1}`,
        width: SIDE,
        height: SIDE,
        channels: 3,
        pixels: interleave(bytes),
      };
    }
    return base + record;
  } catch (error) {
    throw isZlibError(error) ? gzipError(what, record, error) : error;
  } finally {
    reader.close();
  }
}

// CIFAR stores whole planes (all red, all green, all blue); images want RGB per pixel
function interleave(record: Buffer): Uint8Array {
  const out = new Uint8Array(3 * PLANE);
  for (let i = 0, o = 0; i < PLANE; i++, o += 3) {
    out[o] = record[1 + i] as number;
    out[o + 1] = record[1 + PLANE + i] as number;
    out[o + 2] = record[1 + 2 * PLANE + i] as number;
  }
  return out;
}
