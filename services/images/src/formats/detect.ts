import { basename } from 'node:path';
import type { ArchiveLimits } from './archive-entry.ts';
import { CIFAR10_RECORD_BYTES, type CifarInput, openCifar } from './cifar.ts';
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, type IdxPair, openIdx } from './idx.ts';
import { archiveKind, openImageFolder } from './imagefolder.ts';
import { displayName, isZlibError, readContentHead, readGzipSize } from './source.ts';
import { type FileRef, FormatError, type FormatName, type FormatSource, type ImportItem, type Split } from './types.ts';

/** What a file's first bytes say it is. */
export type ContentKind = 'idx-images' | 'idx-labels' | 'zip' | 'tar' | 'tar.gz' | 'text' | 'binary';

/** A file with what its first bytes say about it. */
export interface SniffedFile {
  file: FileRef;
  name: string;
  kind: ContentKind;
  gzip: boolean;
  /** Size on disk. */
  size: number;
  /** Uncompressed size: exact for plain files, the gzip trailer's word for gzip ones. */
  contentSize: number | undefined;
  /** The first bytes of the content, decompressed for gzip. */
  head: Buffer;
}

/** Which reader to use on which files. */
export type ImportPlan =
  | { format: 'idx'; pairs: IdxPair[] }
  | { format: 'cifar10'; input: CifarInput }
  | { format: 'imagefolder'; archive: FileRef };

const SNIFF_BYTES = 8192;
const CIFAR100_RECORD_BYTES = 3074;
const FORMATS: readonly FormatName[] = ['idx', 'cifar10', 'imagefolder'];
const HINT = 'say which with format=idx, cifar10 or imagefolder';

/** Reads a file's first bytes (through gzip when it is compressed) and classifies it. */
export async function sniffFile(file: FileRef): Promise<SniffedFile> {
  const name = displayName(file);
  let sniffed: Awaited<ReturnType<typeof readContentHead>>;
  try {
    sniffed = await readContentHead(file.path, SNIFF_BYTES);
  } catch (error) {
    if (!isZlibError(error)) throw error;
    throw new FormatError(`File "${name}" starts like gzip but is not valid gzip: ${error.message}`, { cause: error });
  }
  const { head, gzip, size } = sniffed;
  const contentSize = gzip ? await readGzipSize(file.path, size) : size;
  return { file, name, kind: classify(head, gzip), gzip, size, contentSize, head };
}

function classify(head: Buffer, gzip: boolean): ContentKind {
  if (head.length >= 4) {
    const magic = head.readUInt32BE(0);
    if (magic === IDX_IMAGES_MAGIC) return 'idx-images';
    if (magic === IDX_LABELS_MAGIC) return 'idx-labels';
  }
  const archive = archiveKind(head, gzip);
  if (archive !== undefined) return archive;
  return isText(head) ? 'text' : 'binary';
}

// Class name lists are short UTF-8 text; CIFAR batches are full of control bytes
function isText(head: Buffer): boolean {
  if (head.length === 0) return false;
  for (const byte of head) {
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return false;
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head.length === SNIFF_BYTES ? head.subarray(0, -4) : head);
    return true;
  } catch {
    return false;
  }
}

/**
 * Decides which reader takes the files: the declared format when the client gave one (checking
 * the files fit it), otherwise the one the content shows. IDX and archives carry magic numbers;
 * CIFAR-10 has none, so it is recognised by whole 3073-byte records with plausible label bytes.
 */
export function planImport(files: readonly SniffedFile[], format?: FormatName): ImportPlan {
  if (files.length === 0) throw new FormatError('No files were sent; an import needs at least one');
  if (format !== undefined && !FORMATS.includes(format)) {
    throw new FormatError(`Format "${format}" is not one of idx, cifar10, imagefolder`);
  }
  const chosen = format ?? guessFormat(files);
  if (chosen === 'idx') return { format: 'idx', pairs: pairIdx(files) };
  if (chosen === 'imagefolder') return { format: 'imagefolder', archive: singleArchive(files) };
  return { format: 'cifar10', input: cifarInput(files) };
}

function guessFormat(files: readonly SniffedFile[]): FormatName {
  if (files.some((file) => file.kind === 'idx-images' || file.kind === 'idx-labels')) return 'idx';
  if (files.some((file) => isArchive(file.kind))) return 'imagefolder';
  const batches = files.filter((file) => file.kind !== 'text');
  if (batches.length === 0) {
    throw new FormatError(`Cannot tell the format of ${quoteNames(files)}: only text files were sent; ${HINT}`);
  }
  const named = files.some((file) => file.kind === 'text');
  for (const file of batches) {
    const why = notCifar(file, named);
    if (why !== undefined) {
      throw new FormatError(
        `Cannot tell the format of "${file.name}": it is not an IDX file or a zip or tar archive, and ${why}; ${HINT}`,
      );
    }
  }
  return 'cifar10';
}

// Why a file cannot be a CIFAR-10 batch, or undefined when it can
function notCifar(file: SniffedFile, named: boolean): string | undefined {
  const size = file.contentSize;
  if (size === undefined || size === 0) return 'it is empty or its size is unknown';
  if (size % CIFAR10_RECORD_BYTES !== 0) {
    if (size % CIFAR100_RECORD_BYTES === 0) {
      return `its ${size} bytes look like CIFAR-100 (3074-byte records), which is not supported`;
    }
    return `its ${size} bytes are not a whole number of ${CIFAR10_RECORD_BYTES}-byte CIFAR-10 records`;
  }
  // Without a class names file the labels are CIFAR-10's ten
  if (!named) {
    for (let at = 0; at < file.head.length; at += CIFAR10_RECORD_BYTES) {
      const label = file.head[at] as number;
      if (label > 9) return `its record ${at / CIFAR10_RECORD_BYTES} has label byte ${label}, not a CIFAR-10 class`;
    }
  }
  return undefined;
}

function isArchive(kind: ContentKind): boolean {
  return kind === 'zip' || kind === 'tar' || kind === 'tar.gz';
}

const KIND_NAMES: Record<ContentKind, string> = {
  'idx-images': 'an IDX images file',
  'idx-labels': 'an IDX labels file',
  zip: 'a zip archive',
  tar: 'a tar archive',
  'tar.gz': 'a tar.gz archive',
  text: 'a text file',
  binary: 'a binary file',
};

function pairIdx(files: readonly SniffedFile[]): IdxPair[] {
  const stray = files.find((file) => file.kind !== 'idx-images' && file.kind !== 'idx-labels');
  if (stray) {
    const magic =
      stray.head.length >= 4
        ? ` (its first bytes are 0x${stray.head.readUInt32BE(0).toString(16).padStart(8, '0')})`
        : '';
    throw new FormatError(
      `File "${stray.name}" is ${KIND_NAMES[stray.kind]}${magic}, not an IDX images (0x00000803) or labels (0x00000801) file`,
    );
  }
  const images = sortByName(files.filter((file) => file.kind === 'idx-images'));
  const labels = sortByName(files.filter((file) => file.kind === 'idx-labels'));
  if (images.length === 0) throw new FormatError(`IDX import of ${quoteNames(files)} has labels but no images file`);
  if (labels.length === 0) throw new FormatError(`IDX import of ${quoteNames(files)} has images but no labels file`);
  const [onlyImages] = images;
  const [onlyLabels] = labels;
  if (images.length === 1 && labels.length === 1 && onlyImages && onlyLabels) {
    return [{ images: onlyImages.file, labels: onlyLabels.file }];
  }
  // Several pairs (train and t10k, say) go together by name: train-images-… with train-labels-…
  const byKey = new Map<string, SniffedFile>();
  for (const file of labels) {
    const key = pairKey(file.name);
    if (byKey.has(key))
      throw new FormatError(
        `IDX labels files "${byKey.get(key)?.name}" and "${file.name}" cannot be told apart by name`,
      );
    byKey.set(key, file);
  }
  const pairs = images.map((file) => {
    const match = byKey.get(pairKey(file.name));
    if (!match) {
      throw new FormatError(
        `IDX images file "${file.name}" has no labels file named like it (e.g. "train-images-idx3-ubyte" goes with "train-labels-idx1-ubyte")`,
      );
    }
    byKey.delete(pairKey(file.name));
    return { images: file.file, labels: match.file };
  });
  const [left] = byKey.values();
  if (left) throw new FormatError(`IDX labels file "${left.name}" has no images file named like it`);
  return pairs;
}

function pairKey(name: string): string {
  return basename(name)
    .toLowerCase()
    .replace(/\.gz$/, '')
    .replace(/images|labels/g, '*')
    .replace(/idx[13]/g, 'idx*');
}

function singleArchive(files: readonly SniffedFile[]): FileRef {
  const [first] = files;
  if (files.length !== 1 || !first) {
    throw new FormatError(
      `An ImageFolder import takes one archive, but ${files.length} files were sent: ${quoteNames(files)}`,
    );
  }
  if (!isArchive(first.kind)) {
    throw new FormatError(`File "${first.name}" is ${KIND_NAMES[first.kind]}, not a zip, tar or tar.gz archive`);
  }
  return first.file;
}

function cifarInput(files: readonly SniffedFile[]): CifarInput {
  // Text is a class names list only under a .txt name: CIFAR's readme.html must not become labels
  const stray = files.find((file) => file.kind === 'text' && !file.name.toLowerCase().endsWith('.txt'));
  if (stray) {
    throw new FormatError(
      `File "${stray.name}" is a text file, neither a CIFAR-10 batch nor a class names file like "batches.meta.txt"`,
    );
  }
  const texts = files.filter((file) => file.kind === 'text');
  if (texts.length > 1) {
    throw new FormatError(`A CIFAR-10 import takes at most one class names file, but got ${quoteNames(texts)}`);
  }
  const wrong = files.find((file) => file.kind !== 'text' && file.kind !== 'binary');
  if (wrong) throw new FormatError(`File "${wrong.name}" is ${KIND_NAMES[wrong.kind]}, not a CIFAR-10 batch`);
  const batches = sortByName(files.filter((file) => file.kind === 'binary'));
  if (batches.length === 0) throw new FormatError('A CIFAR-10 import needs at least one batch file');
  const [meta] = texts;
  return { batches: batches.map((file) => file.file), ...(meta ? { meta: meta.file } : {}) };
}

// Record indexes must not depend on the order the client sent the files in: a re-run resumes by index
function sortByName(files: SniffedFile[]): SniffedFile[] {
  return files.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
}

function quoteNames(files: readonly SniffedFile[]): string {
  return files.map((file) => `"${file.name}"`).join(', ');
}

/** Options for opening an import, passed on to the reader the files call for. */
export interface OpenImportOptions extends Partial<ArchiveLimits> {
  /** The format the client named; detected from the content when absent. */
  format?: FormatName;
  /** Split for records whose files or paths do not name one (IDX and CIFAR-10: for all records). */
  split?: Split;
  /** Label names for IDX and CIFAR-10 label bytes. */
  classNames?: readonly string[];
  /** Largest IDX image, in pixels. */
  maxPixels?: number;
  /** Image extensions an ImageFolder archive may hold. */
  extensions?: readonly string[];
}

/** Sniffs the uploaded files, picks the reader and opens it: the one call an import needs. */
export async function openImport(
  files: readonly FileRef[],
  options: OpenImportOptions = {},
): Promise<FormatSource<ImportItem>> {
  const sniffed: SniffedFile[] = [];
  for (const file of files) sniffed.push(await sniffFile(file));
  const plan = planImport(sniffed, options.format);
  switch (plan.format) {
    case 'idx':
      return openIdx(plan.pairs, {
        classNames: options.classNames,
        split: options.split,
        maxPixels: options.maxPixels,
      });
    case 'cifar10':
      return openCifar(plan.input, { classNames: options.classNames, split: options.split });
    case 'imagefolder':
      return openImageFolder(plan.archive, {
        split: options.split,
        extensions: options.extensions,
        maxEntryBytes: options.maxEntryBytes,
        maxEntries: options.maxEntries,
        maxTotalBytes: options.maxTotalBytes,
      });
  }
}
