import { ByteReader } from './byte-reader.ts';
import { checkRecordBytes, labelTable, truncatedRecord } from './records.ts';
import { displayName, gzipError, isZlibError, openInput, readContentHead } from './source.ts';
import { splitFromFileName } from './splits.ts';
import { type FileRef, FormatError, type FormatSource, type PixelsRecord, type Split } from './types.ts';

/** Magic of an IDX file of unsigned bytes with three dimensions (count, rows, columns). */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic of an IDX file of unsigned bytes with one dimension (count). */
export const IDX_LABELS_MAGIC = 0x00000801;
/** Largest image (rows × columns) a reader accepts unless told otherwise: 4096 × 4096. */
export const DEFAULT_MAX_PIXELS = 4096 * 4096;

const IMAGES_HEADER_BYTES = 16;
const LABELS_HEADER_BYTES = 8;

/** An images file with the labels file that goes with it. */
export interface IdxPair {
  images: FileRef;
  labels: FileRef;
  /** The split of this pair; inferred from the images file name (train-*, t10k-*) when absent. */
  split?: Split;
}

/** How IDX records are labelled and bounded. */
export interface IdxOptions {
  /** Names for label bytes 0, 1, …; the digits themselves when absent. */
  classNames?: readonly string[];
  /** Overrides every pair's split. */
  split?: Split;
  /** Refuse images with more pixels than this before reading any. */
  maxPixels?: number;
}

/** The parsed header of an IDX images file. */
export interface IdxImagesHeader {
  count: number;
  rows: number;
  cols: number;
}

/** Parses the 16-byte header of an IDX images file, naming the file in any error. */
export function parseImagesHeader(head: Uint8Array, name: string, maxPixels = DEFAULT_MAX_PIXELS): IdxImagesHeader {
  const what = `IDX images file "${name}"`;
  const view = header(head, IMAGES_HEADER_BYTES, what, IDX_IMAGES_MAGIC);
  const count = view.getUint32(4);
  const rows = view.getUint32(8);
  const cols = view.getUint32(12);
  if (rows === 0 || cols === 0) throw new FormatError(`${what} claims ${rows}×${cols} images, which have no pixels`);
  // Multiplying two uint32 stays exact in a double up to 2^53, and the limit is far below that
  if (rows * cols > maxPixels) {
    throw new FormatError(
      `${what} claims ${rows}×${cols} images (${rows * cols} pixels each), more than the limit of ${maxPixels} pixels`,
    );
  }
  return { count, rows, cols };
}

/** Parses the 8-byte header of an IDX labels file and returns its record count. */
export function parseLabelsHeader(head: Uint8Array, name: string): number {
  const what = `IDX labels file "${name}"`;
  const view = header(head, LABELS_HEADER_BYTES, what, IDX_LABELS_MAGIC);
  return view.getUint32(4);
}

// The magic is checked first: a swapped or foreign file is named as such even when it is short
function header(head: Uint8Array, bytes: number, what: string, expected: number): DataView {
  if (head.length >= 4) checkMagic(new DataView(head.buffer, head.byteOffset, 4).getUint32(0), expected, what);
  if (head.length < bytes) {
    throw new FormatError(`${what} is ${head.length} bytes long, shorter than its ${bytes}-byte header`);
  }
  return new DataView(head.buffer, head.byteOffset, bytes);
}

function checkMagic(magic: number, expected: number, what: string): void {
  if (magic === expected) return;
  const hint =
    magic === IDX_LABELS_MAGIC ? '; it is a labels file' : magic === IDX_IMAGES_MAGIC ? '; it is an images file' : '';
  throw new FormatError(`${what} has magic ${hex(magic)}, expected ${hex(expected)}${hint}`);
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

interface OpenedPair {
  images: FileRef;
  labels: FileRef;
  imagesName: string;
  labelsName: string;
  header: IdxImagesHeader;
  split: Split | undefined;
}

/**
 * Opens one or more IDX image/label pairs: checks magics, dimensions, that the counts agree and,
 * for plain files, that the sizes match the headers, all before any record is read. Records come
 * one at a time from both files in step; gzip files are detected by their magic.
 */
export async function openIdx(
  pairs: IdxPair | readonly IdxPair[],
  options: IdxOptions = {},
): Promise<FormatSource<PixelsRecord>> {
  const list = Array.isArray(pairs) ? (pairs as readonly IdxPair[]) : [pairs as IdxPair];
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const labels = labelTable(options.classNames);
  const opened: OpenedPair[] = [];
  for (const pair of list) opened.push(await openPair(pair, maxPixels, options.split));
  const total = opened.reduce((sum, pair) => sum + pair.header.count, 0);
  return {
    format: 'idx',
    total,
    records: (recordOptions = {}) => readPairs(opened, labels, recordOptions.from ?? 0),
  };
}

async function openPair(pair: IdxPair, maxPixels: number, split: Split | undefined): Promise<OpenedPair> {
  const imagesName = displayName(pair.images);
  const labelsName = displayName(pair.labels);
  const imagesHead = await contentHead(`IDX images file "${imagesName}"`, pair.images.path, IMAGES_HEADER_BYTES);
  const labelsHead = await contentHead(`IDX labels file "${labelsName}"`, pair.labels.path, LABELS_HEADER_BYTES);
  const header = parseImagesHeader(imagesHead.head, imagesName, maxPixels);
  const labelCount = parseLabelsHeader(labelsHead.head, labelsName);
  if (labelCount !== header.count) {
    throw new FormatError(
      `IDX images file "${imagesName}" holds ${header.count} images but labels file "${labelsName}" holds ${labelCount} labels`,
    );
  }
  const pixels = header.rows * header.cols;
  if (!imagesHead.gzip) {
    checkRecordBytes(`IDX images file "${imagesName}"`, imagesHead.size, IMAGES_HEADER_BYTES, header.count, pixels);
  }
  if (!labelsHead.gzip) {
    checkRecordBytes(`IDX labels file "${labelsName}"`, labelsHead.size, LABELS_HEADER_BYTES, header.count, 1);
  }
  return {
    images: pair.images,
    labels: pair.labels,
    imagesName,
    labelsName,
    header,
    split: split ?? pair.split ?? splitFromFileName(imagesName),
  };
}

async function contentHead(what: string, path: string, bytes: number) {
  try {
    return await readContentHead(path, bytes);
  } catch (error) {
    throw isZlibError(error) ? gzipError(what, -1, error) : error;
  }
}

async function* readPairs(
  pairs: readonly OpenedPair[],
  labels: readonly string[],
  from: number,
): AsyncGenerator<PixelsRecord, void, undefined> {
  let base = 0;
  for (const pair of pairs) {
    if (base + pair.header.count > from) yield* readPair(pair, base, labels, from);
    base += pair.header.count;
  }
}

async function* readPair(
  pair: OpenedPair,
  base: number,
  labels: readonly string[],
  from: number,
): AsyncGenerator<PixelsRecord, void, undefined> {
  const { count, rows, cols } = pair.header;
  const size = rows * cols;
  const imagesWhat = `IDX images file "${pair.imagesName}"`;
  const labelsWhat = `IDX labels file "${pair.labelsName}"`;
  const images = new ByteReader((await openInput(pair.images.path)).stream);
  let labelsFile: ByteReader | undefined;
  let reading = imagesWhat;
  let record = -1;
  try {
    await images.read(IMAGES_HEADER_BYTES);
    reading = labelsWhat;
    labelsFile = new ByteReader((await openInput(pair.labels.path)).stream);
    await labelsFile.read(LABELS_HEADER_BYTES);
    for (record = 0; record < count; record++) {
      reading = imagesWhat;
      const image = await images.read(size);
      if (image.length < size) throw truncatedRecord(imagesWhat, record, image.length, size);
      reading = labelsWhat;
      const label = await labelsFile.read(1);
      if (label.length < 1) throw truncatedRecord(labelsWhat, record, 0, 1);
      const byte = label[0] as number;
      if (byte >= labels.length) {
        throw new FormatError(
          `${labelsWhat} gives record ${record} label ${byte}, but only ${labels.length} class names were given`,
          { index: base + record },
        );
      }
      const index = base + record;
      if (index < from) continue;
      yield {
        kind: 'pixels',
        index,
        label: labels[byte] as string,
        split: pair.split,
        name: `${pair.imagesName}#${record}`,
        width: cols,
        height: rows,
        channels: 1,
        // Copy: the read may share memory with the stream's chunk
        pixels: new Uint8Array(image),
      };
    }
    reading = imagesWhat;
    if (!(await images.atEnd()))
      throw new FormatError(`${imagesWhat} has bytes after its last record (${count} records)`);
    reading = labelsWhat;
    if (!(await labelsFile.atEnd()))
      throw new FormatError(`${labelsWhat} has bytes after its last record (${count} records)`);
  } catch (error) {
    throw isZlibError(error) ? gzipError(reading, record, error) : error;
  } finally {
    images.close();
    labelsFile?.close();
  }
}
