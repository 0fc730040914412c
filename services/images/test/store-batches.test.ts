import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { Store, THUMBNAIL_SIZES } from '../src/storage/store.ts';
import { Thumbnails } from '../src/thumbnails.ts';
import { tempDir } from './helpers/app.ts';
import { numberedPng } from './helpers/images.ts';

let dir: Awaited<ReturnType<typeof tempDir>>;
let store: Store;

before(async () => {
  dir = await tempDir();
  store = new Store(dir.path, { concurrency: 3 });
  await store.init();
});

after(async () => {
  await dir?.remove();
});

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Every file under a folder, relative paths, temp files included. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

test('stageMany writes every file beside its place, placeSynced puts them there with the same bytes', async () => {
  const contents = await Promise.all(Array.from({ length: 25 }, (_, n) => numberedPng(n, 12)));
  const staged = await store.stageMany(contents.map((bytes) => ({ bytes, sha256: sha(bytes) })));
  assert.equal(staged.length, 25);
  for (const file of staged) {
    assert.equal(dirname(file.path), dirname(store.path(file.sha256)), 'staged next to its final place');
    assert.equal(await store.has(file.sha256), false);
  }
  await store.placeSynced(staged);
  for (const [n, bytes] of contents.entries()) {
    const file = staged[n];
    assert.ok(file?.placed);
    assert.deepEqual(await readFile(store.path(sha(bytes))), bytes);
  }
  const temps = (await filesUnder(dir.path)).filter((path) => path.includes('.tmp-'));
  assert.deepEqual(temps, [], 'no temp file is left once everything is in place');
});

test('a write that fails leaves none of the batch behind and says why with its errno code', async () => {
  const contents = await Promise.all(Array.from({ length: 12 }, (_, n) => numberedPng(100 + n, 12)));
  const items = contents.map((bytes) => ({ bytes, sha256: sha(bytes) }));
  // one file's folder is taken by a plain file, so the folder cannot be made
  const blocked = items[7] as { sha256: string };
  const folder = dirname(store.path(blocked.sha256));
  await mkdir(dirname(folder), { recursive: true });
  await writeFile(folder, 'not a folder');
  const before = await filesUnder(dir.path);
  await assert.rejects(store.stageMany(items), (err: NodeJS.ErrnoException) => {
    assert.match(err.code ?? '', /^E[A-Z]+$/, 'an errno code, as a system error');
    return true;
  });
  assert.deepEqual((await filesUnder(dir.path)).sort(), before.sort(), 'no temp file of the batch survives');
});

test('putFiles replaces a file whole; a thumbnail made on demand has every size right and is kept', async () => {
  const thumbnails = new Thumbnails(store, 1_000_000);
  // a small picture (every size is the picture itself) and a large one (each size its own)
  const small = await numberedPng(7, 28);
  const large = await sharp({ create: { width: 300, height: 180, channels: 3, background: '#3a7' } })
    .composite([{ input: await numberedPng(9, 90), top: 40, left: 100 }])
    .png()
    .toBuffer();
  for (const bytes of [small, large]) {
    const [staged] = await store.stageMany([{ bytes, sha256: sha(bytes) }]);
    await store.placeSynced([staged as NonNullable<typeof staged>]);
    const { width, height } = await sharp(bytes).metadata();
    for (const size of THUMBNAIL_SIZES) {
      const made = await thumbnails.get(sha(bytes), size);
      assert.deepEqual(
        await readFile(store.thumbnailPath(sha(bytes), size)),
        made,
        `size ${size} is kept on the volume`,
      );
      const info = await sharp(made).metadata();
      const scale = Math.min(1, size / Math.max(width as number, height as number));
      assert.equal(info.width, Math.round((width as number) * scale), `width at ${size}`);
      assert.equal(info.format, 'webp');
    }
  }
  // an existing file is replaced by rename, never rewritten in place
  const path = store.thumbnailPath(sha(small), 64);
  await store.putFiles([{ path, bytes: Buffer.from('replacement') }]);
  assert.equal(await readFile(path, 'utf8'), 'replacement');
  assert.deepEqual(
    (await filesUnder(dir.path)).filter((file) => file.includes('.tmp-')),
    [],
    'no temp file is left',
  );
});
