import { httpError } from '@berth/service-kit';

/** The splits a data set can be cut into. */
export const SPLITS = ['train', 'test', 'val'] as const;
/** One of the splits. */
export type Split = (typeof SPLITS)[number];

/** A data set name: a lowercase slug that is safe as a folder and file name. */
export const DATASET_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';
/** A label: free text on one line, up to 128 characters, without "/" or "\\" (it becomes a folder). */
export const LABEL_PATTERN = '^(?!\\.{1,2}$)(?!\\s)(?!.*\\s$)[^/\\\\\\p{Cc}\\p{Cs}]{1,128}$';
/** A tag: a lowercase slug, ":" allowed for namespaces such as "source:web". */
export const TAG_PATTERN = '^[a-z0-9][a-z0-9._:-]{0,63}$';
/** The most tags an image carries. */
export const MAX_TAGS = 32;

/** What each rule says to a client who broke it. */
export const RULES = {
  dataset: 'must be 1 to 64 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
  label:
    'must be 1 to 128 characters without "/", "\\" or control characters, not "." or "..", and without blanks at either end',
  tag: 'must be 1 to 64 characters of a-z, 0-9, ".", "_", ":" and "-", starting with a letter or digit',
  tags: `must be a comma-separated list of at most ${MAX_TAGS} tags, each 1 to 64 characters of a-z, 0-9, ".", "_", ":" and "-"`,
  split: 'must be one of train, test, val',
} as const;

const dataset = new RegExp(DATASET_PATTERN);
const label = new RegExp(LABEL_PATTERN, 'u');
const tag = new RegExp(TAG_PATTERN);

/** Quotes a client's value for a message, shortened when long. */
export function shown(value: string): string {
  return `"${value.length > 80 ? `${value.slice(0, 77)}...` : value}"`;
}

function invalid(what: string, value: string, rule: string) {
  return httpError(400, 'INVALID_NAME', `${what} ${shown(value)} is not valid: it ${rule}`);
}

/** True for a valid data set name. */
export function isDataset(value: string): boolean {
  return dataset.test(value);
}

/** True for a valid label. */
export function isLabel(value: string): boolean {
  return label.test(value);
}

/** True for a valid tag. */
export function isTag(value: string): boolean {
  return tag.test(value);
}

/** A data set name, or a 400 that quotes it and states the rule. */
export function checkDataset(value: string): string {
  if (!isDataset(value)) throw invalid('Data set name', value, RULES.dataset);
  return value;
}

/** A label, or a 400 that quotes it and states the rule. */
export function checkLabel(value: string): string {
  if (!isLabel(value)) throw invalid('Label', value, RULES.label);
  return value;
}

/** A split, or a 400 that quotes it. */
export function checkSplit(value: string): Split {
  if (!(SPLITS as readonly string[]).includes(value)) throw invalid('Split', value, RULES.split);
  return value as Split;
}

/** Tags from a comma-separated list (blank entries dropped, repeats merged), or a 400 naming the bad one. */
export function parseTags(value: string): string[] {
  const tags = [
    ...new Set(
      value
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
    ),
  ];
  for (const t of tags) if (!isTag(t)) throw invalid('Tag', t, RULES.tag);
  if (tags.length > MAX_TAGS) {
    throw httpError(400, 'INVALID_NAME', `Too many tags (${tags.length}); an image carries at most ${MAX_TAGS}`);
  }
  return tags;
}
