import { httpError } from '@berth/service-kit';
import type { UploadFields } from './ingest.ts';
import { checkDataset, checkLabel, checkSplit, parseTags } from './names.ts';
import { cleanFilename, type RawFields } from './receive.ts';

/** The data set an upload goes to when it names none. */
export const DEFAULT_DATASET = 'default';

/** The upload fields a raw-body POST carries in its query string. */
export interface UploadQuery {
  dataset?: string;
  label?: string;
  split?: string;
  tags?: string;
  filename?: string;
}

const KNOWN = ['dataset', 'label', 'split', 'tags', 'filename'];

function single(fields: RawFields, name: string): string | undefined {
  const values = fields[name];
  if (!values || values.length === 0) return undefined;
  if (values.length > 1) throw httpError(400, 'REPEATED_FIELD', `Form field "${name}" is given more than once`);
  return values[0];
}

/**
 * The upload's fields, from the form and the query string (the form wins where both give one),
 * each checked against its rule; blank values count as absent.
 */
export function uploadFields(form: RawFields, query: UploadQuery, filename: string | null): UploadFields {
  for (const name of Object.keys(form)) {
    if (!KNOWN.includes(name)) {
      throw httpError(400, 'UNKNOWN_FIELD', `Form field "${name}" is not known; send file, ${KNOWN.join(', ')}`);
    }
  }
  const pick = (name: keyof UploadQuery) => {
    const value = (single(form, name) ?? query[name])?.trim();
    return value ? value : undefined;
  };
  const dataset = pick('dataset');
  const label = pick('label');
  const split = pick('split');
  const tags = form.tags ? form.tags.join(',') : (query.tags ?? '');
  return {
    dataset: dataset === undefined ? DEFAULT_DATASET : checkDataset(dataset),
    label: label === undefined ? null : checkLabel(label),
    split: split === undefined ? null : checkSplit(split),
    tags: parseTags(tags),
    filename: cleanFilename(pick('filename')) ?? filename,
  };
}
