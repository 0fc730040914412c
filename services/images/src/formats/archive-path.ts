import { splitFromFolder } from './splits.ts';
import type { SkipCause, Split } from './types.ts';

/** Image file extensions an ImageFolder archive may hold, lower case with the dot. */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze([
  '.png',
  '.jpg',
  '.jpeg',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
]);

// Files that operating systems drop into folders on their own
const SYSTEM_FILES = new Set(['__macosx', 'thumbs.db', 'desktop.ini']);

/** Where an entry's path puts it, or why it is left out. */
export type EntryPlace =
  | { ok: true; label: string; split: Split | undefined; file: string }
  | { ok: false; cause: SkipCause; benign: boolean; reason: string };

/**
 * Reads label and split from an archive entry path. Accepted layouts, each optionally under one
 * top folder (the one `tar czf set.tgz set/` adds): `<label>/<file>` and `<split>/<label>/<file>`.
 * Paths that are absolute, climb with `..`, are hidden, or nest too deep or too shallow are refused.
 */
export function placeEntry(path: string, extensions: ReadonlySet<string>): EntryPlace {
  const quoted = `Archive entry "${path}"`;
  if (path.includes('\0')) return refuse('unsafe-path', `${quoted} has a NUL byte in its name`);
  if (path.includes('\\')) return refuse('unsafe-path', `${quoted} has a backslash in its name`);
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) {
    return refuse('unsafe-path', `${quoted} has an absolute path`);
  }
  const segments = path.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) return refuse('unsafe-path', `${quoted} climbs out of the archive`);
  if (segments.some((segment) => segment.startsWith('.') || SYSTEM_FILES.has(segment.toLowerCase()))) {
    return refuse('hidden', `${quoted} is a hidden or system file`, true);
  }
  const file = segments[segments.length - 1];
  if (file === undefined) return refuse('layout', `${quoted} has an empty name`);
  if (segments.length < 2) return refuse('layout', `${quoted} is not inside a label folder`);

  let split: Split | undefined;
  if (segments.length === 3) {
    // <split>/<label>/<file>, or <top>/<label>/<file> when the first folder is not a split name
    split = splitFromFolder(segments[0] as string);
  } else if (segments.length === 4) {
    split = splitFromFolder(segments[1] as string);
    if (split === undefined) {
      return refuse('layout', `${quoted} is nested too deep: expected <label>/<file> or <split>/<label>/<file>`);
    }
  } else if (segments.length > 4) {
    return refuse('layout', `${quoted} is nested too deep: expected <label>/<file> or <split>/<label>/<file>`);
  }

  const dot = file.lastIndexOf('.');
  const extension = dot > 0 ? file.slice(dot).toLowerCase() : '';
  if (!extensions.has(extension)) {
    const what = extension === '' ? 'has no file extension' : `has extension "${extension}"`;
    return refuse('extension', `${quoted} is not an image (it ${what})`);
  }
  // macOS archives spell accented names decomposed; one spelling keeps one label
  const label = (segments[segments.length - 2] as string).normalize('NFC');
  return { ok: true, label, split, file };
}

function refuse(cause: SkipCause, reason: string, benign = false): EntryPlace {
  return { ok: false, cause, benign, reason: `${reason}; skipped` };
}
