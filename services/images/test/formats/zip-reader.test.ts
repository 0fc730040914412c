import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import yauzl from 'yauzl';
import { WindowedFileReader } from '../../src/formats/zip-reader.ts';
import { makeZip, pattern, type TempDir, tempDir } from './helpers.ts';

let dir: TempDir;

before(async () => {
  dir = await tempDir();
});

after(async () => {
  await dir.remove();
});

test('WindowedFileReader reads any range exactly, from the windows or straight from the file', async () => {
  const bytes = Buffer.from(pattern(3, 300_000));
  const handle = await open(await dir.write('ranges.bin', bytes));
  const reader = new WindowedFileReader(handle);
  // small reads near each other (window hits), far apart (misses), large (direct) and past the end
  for (const [position, length] of [
    [0, 46],
    [46, 20],
    [65_000, 1000],
    [299_990, 10],
    [10, 46],
    [100_000, 150_000],
  ] as const) {
    const out = Buffer.alloc(length);
    assert.equal(await reader.readAt(out, position), length);
    assert.ok(out.equals(bytes.subarray(position, position + length)), `bytes at ${position}`);
  }
  const tail = Buffer.alloc(100);
  assert.equal(await reader.readAt(tail, 299_950), 50);
  await new Promise((resolve) => reader.close(resolve));
});

test("WindowedFileReader serves yauzl's own entry streams", async () => {
  const big = Buffer.from(pattern(5, 200_000));
  const path = await dir.write(
    'streams.zip',
    makeZip([
      { name: 'a.bin', data: big },
      { name: 'b.bin', data: big, method: 0 },
    ]),
  );
  const handle = await open(path);
  const { size } = await handle.stat();
  const zip = await yauzl.fromRandomAccessReaderPromise(new WindowedFileReader(handle), size, {
    lazyEntries: true,
    autoClose: false,
  });
  for await (const entry of zip.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const chunk of await zip.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(big), entry.fileName);
  }
  zip.close();
});
