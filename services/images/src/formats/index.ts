// The data set format layer: readers for IDX, CIFAR-10 and ImageFolder archives, format
// detection and the PNG encoder. Pure streaming code: no database, no HTTP.
export type { ArchiveLimits } from './archive-entry.ts';
export { IMAGE_EXTENSIONS } from './archive-path.ts';
export {
  CIFAR10_CLASSES,
  CIFAR10_RECORD_BYTES,
  type CifarInput,
  type CifarOptions,
  openCifar,
  parseClassNames,
} from './cifar.ts';
export {
  type ImportPlan,
  type OpenImportOptions,
  openImport,
  planImport,
  type SniffedFile,
  sniffFile,
} from './detect.ts';
export { DEFAULT_MAX_PIXELS, type IdxOptions, type IdxPair, openIdx } from './idx.ts';
export { DEFAULT_ARCHIVE_LIMITS, type ImageFolderOptions, openImageFolder } from './imagefolder.ts';
export { encodePng, type RawImage } from './png.ts';
export * from './types.ts';
