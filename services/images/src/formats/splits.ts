import { basename } from 'node:path';
import type { Split } from './types.ts';

const FOLDER_SPLITS: Record<string, Split> = {
  train: 'train',
  test: 'test',
  val: 'val',
  valid: 'val',
  validation: 'val',
};

/** The split a folder name stands for in an ImageFolder tree, if it is one. */
export function splitFromFolder(folder: string): Split | undefined {
  return Object.hasOwn(FOLDER_SPLITS, folder) ? FOLDER_SPLITS[folder] : undefined;
}

/**
 * The split a data file's name implies: MNIST's train-* and t10k-*, CIFAR-10's data_batch_* and
 * test_batch. Unknown names imply none.
 */
export function splitFromFileName(name: string): Split | undefined {
  const lower = basename(name).toLowerCase();
  if (lower.startsWith('train') || lower.startsWith('data_batch')) return 'train';
  if (lower.startsWith('t10k') || lower.startsWith('test')) return 'test';
  if (lower.startsWith('val')) return 'val';
  return undefined;
}
