import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { CLAIMED_DIR } from './layout.ts';
import { moveKeeping, removeEmptyDirs } from './move.ts';

const HEARTBEAT = '.heartbeat';

/** A name for this process's claim folder: the host (the container) plus the pid and a random part, so a restart gets a new one. */
export function replicaId(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .slice(0, 64) || 'host';
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/**
 * Claims on inbox files for one replica. A file is claimed by rename(2) from the inbox into
 * `.claimed/<replica>/<same relative path>`: on one file system the rename is atomic, so of two
 * replicas renaming the same file one succeeds and the other gets ENOENT. The replica then owns the
 * file until it moves it on to .done or .failed, or releases it back into the inbox.
 */
export class Claims {
  readonly root: string;
  readonly id: string;
  readonly dir: string;

  constructor(root: string, id: string) {
    this.root = root;
    this.id = id;
    this.dir = join(root, CLAIMED_DIR, id);
  }

  /** Says this replica is alive: the heartbeat file's mtime is what others compare with the claim timeout. */
  async heartbeat(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFile(join(this.dir, HEARTBEAT), `${new Date().toISOString()}\n`);
  }

  /** Takes the inbox file at `rel`; undefined when it is gone (another replica took it first). */
  async claim(rel: string): Promise<string | undefined> {
    const to = join(this.dir, rel);
    await mkdir(dirname(to), { recursive: true });
    try {
      await rename(join(this.root, rel), to);
      return to;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Puts a claimed file back at its place in the inbox (beside, as name~2, if a new file took the name). */
  async release(claimed: string): Promise<string> {
    return moveKeeping(claimed, this.root, relative(this.dir, claimed));
  }

  /**
   * Gives back the files of replicas whose heartbeat is older than `timeoutMs` (a process that died
   * holding claims), and any of this replica's own from an earlier scan. Each file is first renamed
   * into this replica's folder, so of two replicas recovering at once only one moves it.
   */
  async recover(timeoutMs: number): Promise<number> {
    let recovered = await this.#releaseAll(this.dir, this.dir);
    const base = join(this.root, CLAIMED_DIR);
    let others: string[];
    try {
      others = (await readdir(base, { withFileTypes: true }))
        .filter((entry) => entry.isDirectory() && entry.name !== this.id)
        .map((entry) => entry.name);
    } catch (err) {
      ignoreMissing(err as NodeJS.ErrnoException);
      return recovered;
    }
    for (const other of others) {
      const dir = join(base, other);
      if (!(await this.#stale(dir, timeoutMs))) continue;
      recovered += await this.#releaseAll(dir, this.dir);
      // only empty folders go: a file claimed this very moment by a replica thought dead stays
      await removeEmptyDirs(dir);
      await unlink(join(dir, HEARTBEAT)).catch(ignoreMissing);
      await rmdir(dir).catch(() => {});
    }
    return recovered;
  }

  /** True when the folder's heartbeat (or, without one, the folder itself) is older than the timeout. */
  async #stale(dir: string, timeoutMs: number): Promise<boolean> {
    const beat = await stat(join(dir, HEARTBEAT)).catch(() => stat(dir).catch(() => undefined));
    return beat !== undefined && Date.now() - beat.mtimeMs > timeoutMs;
  }

  /** Moves every file under `from` into `own` (same relative path) and from there back to the inbox. */
  async #releaseAll(from: string, own: string): Promise<number> {
    let entries: { parentPath: string; name: string; isDirectory(): boolean }[];
    try {
      entries = await readdir(from, { recursive: true, withFileTypes: true });
    } catch (err) {
      ignoreMissing(err as NodeJS.ErrnoException);
      return 0;
    }
    let count = 0;
    for (const entry of entries) {
      if (entry.isDirectory() || (entry.parentPath === from && entry.name === HEARTBEAT)) continue;
      const path = join(entry.parentPath, entry.name);
      const rel = relative(from, path);
      let mine = path;
      if (from !== own) {
        mine = join(own, rel);
        await mkdir(dirname(mine), { recursive: true });
        try {
          await rename(path, mine);
        } catch (err) {
          ignoreMissing(err as NodeJS.ErrnoException);
          continue;
        }
      }
      await this.release(mine);
      count++;
    }
    return count;
  }

  /** Removes the folders left empty under this replica's claim folder by files that moved on. */
  async tidy(): Promise<void> {
    await removeEmptyDirs(this.dir);
  }

  /** Removes this replica's claim folder at shutdown, when nothing is claimed any more. */
  async close(): Promise<void> {
    await removeEmptyDirs(this.dir);
    await unlink(join(this.dir, HEARTBEAT)).catch(ignoreMissing);
    await rmdir(this.dir).catch(() => {});
  }
}
