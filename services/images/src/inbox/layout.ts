import { httpError } from '@berth/service-kit';
import { splitFromFolder } from '../formats/splits.ts';
import type { UploadFields } from '../ingest.ts';
import { checkDataset, checkLabel, shown } from '../names.ts';
import { cleanFilename } from '../receive.ts';

/** The folders under INBOX_DIR the service keeps for itself; every dot-folder is skipped by the scan. */
export const DONE_DIR = '.done';
export const FAILED_DIR = '.failed';
export const CLAIMED_DIR = '.claimed';

/** File names a writer uses while the file is still coming in (browsers, curl, rsync, editors). */
const PARTIAL = /\.(part|partial|tmp|crdownload|download)$|~$/i;

const LAYOUT = 'put images in <dataset>/<label>/ or <dataset>/<split>/<label>/ under the inbox';

/** True for a name the scan leaves alone: dot-files and dot-folders, and files still being written. */
export function isIgnored(name: string): boolean {
  return name.startsWith('.') || PARTIAL.test(name);
}

/**
 * Where a file in the inbox belongs, read from its path relative to the inbox (segments split on
 * "/"): `<dataset>/<label>/<file>`, or `<dataset>/<split>/<label>/<file>` where split is train, test
 * or val (valid and validation mean val). A path of any other shape, or a name that breaks the
 * rules uploads are held to, is a 400 whose message says what to change.
 */
export function placementOf(segments: readonly string[]): UploadFields {
  const file = segments.at(-1) ?? '';
  if (segments.length < 3) {
    throw httpError(400, 'INVALID_PLACE', `File ${shown(segments.join('/'))} is not in a label folder; ${LAYOUT}`);
  }
  if (segments.length > 4) {
    throw httpError(400, 'INVALID_PLACE', `File ${shown(segments.join('/'))} is too deep; ${LAYOUT}`);
  }
  const dataset = checkDataset(segments[0] as string);
  const label = checkLabel(segments.at(-2) as string);
  let split = null;
  if (segments.length === 4) {
    const folder = segments[1] as string;
    split = splitFromFolder(folder) ?? null;
    if (!split) {
      throw httpError(
        400,
        'INVALID_PLACE',
        `Folder ${shown(folder)} is not a split (train, test, val, valid, validation); ${LAYOUT}`,
      );
    }
  }
  return { dataset, label, split, tags: [], filename: cleanFilename(file) };
}
