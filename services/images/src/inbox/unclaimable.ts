import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { Gauge, type Registry } from 'prom-client';

/** An inbox file the service cannot claim (move out of its folder), as GET /images/inbox shows it. */
export interface UnclaimableFile {
  /** Path relative to the inbox. */
  file: string;
  /** The system error code of the failed move, e.g. EACCES. */
  code: string;
  /** What is wrong and how to fix it. */
  message: string;
  /** When this service first failed to claim it (ISO 8601). */
  since: string;
}

/** How to put files into the Compose stack's inbox as the service's own user (the README's recipe). */
export const COMPOSE_RECIPE =
  'tar -cf - -C <folder> <dataset> | docker compose exec -T images tar -xf - -C /data/inbox';

/** The message for a file whose claim failed with `code`: who owns its folder, who the service is, what to do. */
export function unclaimableMessage(rel: string, code: string, folderUid: number | undefined): string {
  const uid = process.getuid?.();
  const owner = folderUid === undefined ? '' : ` (its folder belongs to uid ${folderUid})`;
  const self = uid === undefined ? 'this service' : `this service (uid ${uid})`;
  const fix =
    uid === undefined
      ? 'give the service write access to the folder'
      : `copy files in as uid ${uid}, e.g. \`${COMPOSE_RECIPE}\`, or \`chown -R ${uid}\` the folder`;
  return `Inbox file "${rel}" cannot be taken in: ${self} cannot move it out of its folder${owner} (${code}); ${fix}. It stays where it is and is tried again at every scan`;
}

/**
 * The inbox files a scan could not claim. Each is logged once, as an error that says how to fix it,
 * counted in `images_inbox_unclaimable_files` and listed by GET /images/inbox until a claim works or
 * the file goes away.
 */
export class Unclaimable {
  readonly #files = new Map<string, UnclaimableFile>();
  readonly #log: FastifyBaseLogger;
  readonly #root: string;

  constructor(root: string, registry: Registry, log: FastifyBaseLogger) {
    this.#root = root;
    this.#log = log;
    const files = this.#files;
    new Gauge({
      name: 'images_inbox_unclaimable_files',
      help: 'Inbox files this service cannot move out of their folder (usually copied in as another user); GET /images/inbox lists them',
      registers: [registry],
      collect() {
        this.set(files.size);
      },
    });
  }

  /** True when `rel` is known to be unclaimable. */
  has(rel: string): boolean {
    return this.#files.has(rel);
  }

  /** Records a failed claim; the first failure of a file is logged. */
  async add(rel: string, err: NodeJS.ErrnoException): Promise<void> {
    if (this.#files.has(rel)) return;
    const code = err.code ?? 'UNKNOWN';
    const folder = await stat(dirname(join(this.#root, rel))).catch(() => undefined);
    const entry = {
      file: rel,
      code,
      message: unclaimableMessage(rel, code, folder?.uid),
      since: new Date().toISOString(),
    };
    this.#files.set(rel, entry);
    this.#log.error({ file: rel, code, err }, entry.message);
  }

  /** Forgets `rel` once a claim of it worked. */
  claimed(rel: string): void {
    if (this.#files.delete(rel)) this.#log.info({ file: rel }, 'inbox file that could not be claimed is taken in now');
  }

  /** Forgets every file not in `listed`: taken out of the inbox by someone else. */
  keepOnly(listed: ReadonlySet<string>): void {
    for (const rel of this.#files.keys()) if (!listed.has(rel)) this.#files.delete(rel);
  }

  /** The files, oldest first, at most `limit`. */
  list(limit: number): { count: number; files: UnclaimableFile[] } {
    return { count: this.#files.size, files: [...this.#files.values()].slice(0, limit) };
  }
}
