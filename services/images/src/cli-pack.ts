import { createReadStream, createWriteStream } from 'node:fs';
import { opendir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

async function* walk(dir: string): AsyncGenerator<string> {
  const entries = [];
  for await (const entry of await opendir(dir)) entries.push(entry);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

/**
 * Packs a folder of `<label>/…` or `<split>/<label>/…` images into a tar at `target`, one file
 * at a time (hidden files and links left out). Returns how many files went in.
 */
export async function packFolder(folder: string, target: string): Promise<number> {
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(target));
  let count = 0;
  for await (const path of walk(folder)) {
    const { size, mtime } = await stat(path);
    const name = relative(folder, path).split(sep).join('/');
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry({ name, size, mtime }, (err) => (err ? reject(err) : resolve()));
      pipeline(createReadStream(path), entry).catch(reject);
    });
    count++;
  }
  pack.finalize();
  await written;
  return count;
}
