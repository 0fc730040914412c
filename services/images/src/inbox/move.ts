import { constants, type Dirent } from 'node:fs';
import { copyFile, link, mkdir, readdir, rmdir, unlink } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';

/** Tries a name and then name~2, name~3… (before the extension) until one is free. */
function candidate(name: string, n: number): string {
  if (n === 1) return name;
  const ext = extname(name);
  return `${name.slice(0, name.length - ext.length)}~${n}${ext}`;
}

/** Creates `to` as a new name for `from`; false when `to` already exists. Never replaces a file. */
async function linkNew(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  }
  // a file system without hard links: a copy that refuses an existing target
  try {
    await copyFile(from, to, constants.COPYFILE_EXCL);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Moves a file to `root/rel`, or to `name~2.ext`, `name~3.ext`… there when the name is taken, and
 * returns where it went. link(2) then unlink(2) rather than rename(2): rename would silently replace
 * a file of the same name that another replica (or an earlier run) put there.
 */
export async function moveKeeping(from: string, root: string, rel: string): Promise<string> {
  const target = join(root, rel);
  const dir = dirname(target);
  await mkdir(dir, { recursive: true });
  const name = target.slice(dir.length + 1);
  let remade = false;
  for (let n = 1; ; ) {
    const to = join(dir, candidate(name, n));
    let moved: boolean;
    try {
      moved = await linkNew(from, to);
    } catch (err) {
      // the folder may have been removed as empty (the inbox prune) since it was made: once more
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || remade) throw err;
      remade = true;
      await mkdir(dir, { recursive: true });
      continue;
    }
    if (moved) {
      await unlink(from);
      return to;
    }
    n++;
  }
}

/** A folder's entries, all the way down; none when the folder is not there. */
export async function entriesUnder(root: string): Promise<Dirent[]> {
  try {
    return await readdir(root, { recursive: true, withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Removes the empty folders under `root` (not `root` itself); a folder something was put in stays. */
export async function removeEmptyDirs(root: string): Promise<void> {
  const entries = await entriesUnder(root);
  const dirs = entries.filter((entry) => entry.isDirectory()).map((entry) => join(entry.parentPath, entry.name));
  // deepest first, so a parent is empty by the time it is tried
  dirs.sort((a, b) => b.length - a.length);
  for (const dir of dirs) {
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST' && err.code !== 'ENOENT') throw err;
    });
  }
}
