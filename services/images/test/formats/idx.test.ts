import assert from 'node:assert/strict';
import { readdir, readlink, rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { openIdx } from '../../src/formats/idx.ts';
import { FormatError, type PixelsRecord } from '../../src/formats/types.ts';
import { collect, collectUntilError, gzip, idxImages, idxLabels, pattern, type TempDir, tempDir } from './helpers.ts';

let dir: TempDir;
const rows = 3;
const cols = 4;
const images = Array.from({ length: 5 }, (_, i) => pattern(i + 1, rows * cols));
const labels = [3, 1, 4, 1, 5];

before(async () => {
  dir = await tempDir();
});

after(async () => {
  await dir.remove();
});

async function pair(name: string, imageBytes: Uint8Array, labelBytes: Uint8Array) {
  return {
    images: { path: await dir.write(`${name}-images`, imageBytes), name: `${name}-images-idx3-ubyte` },
    labels: { path: await dir.write(`${name}-labels`, labelBytes), name: `${name}-labels-idx1-ubyte` },
  };
}

function assertRecords(records: PixelsRecord[], offset = 0) {
  assert.equal(records.length, images.length - offset);
  records.forEach((record, i) => {
    const at = i + offset;
    assert.equal(record.kind, 'pixels');
    assert.equal(record.index, at);
    assert.equal(record.width, cols);
    assert.equal(record.height, rows);
    assert.equal(record.channels, 1);
    assert.equal(record.label, String(labels[at]));
    assert.deepEqual(record.pixels, images[at]);
  });
}

test('openIdx reads a plain pair record by record with digit labels and the split from the file name', async () => {
  const source = await openIdx(await pair('train', idxImages(rows, cols, images), idxLabels(labels)));
  assert.equal(source.format, 'idx');
  assert.equal(source.total, 5);
  const records = await collect(source);
  assertRecords(records);
  assert.equal(records[0]?.split, 'train');
  assert.equal(records[2]?.name, 'train-images-idx3-ubyte#2');
});

test('openIdx reads gzip files, alone or next to a plain one', async () => {
  for (const [gzImages, gzLabels] of [
    [true, true],
    [true, false],
    [false, true],
  ]) {
    const imageBytes = idxImages(rows, cols, images);
    const labelBytes = idxLabels(labels);
    const files = await pair(
      `t10k-${gzImages}-${gzLabels}`,
      gzImages ? gzip(imageBytes) : imageBytes,
      gzLabels ? gzip(labelBytes) : labelBytes,
    );
    const records = await collect(await openIdx(files));
    assertRecords(records);
    assert.equal(records[0]?.split, 'test');
  }
});

test('openIdx names labels from a class list and overrides the split when asked', async () => {
  const names = ['zero', 'one', 'two', 'three', 'four', 'five'];
  const source = await openIdx(await pair('named', idxImages(rows, cols, images), idxLabels(labels)), {
    classNames: names,
    split: 'val',
  });
  const records = await collect(source);
  assert.deepEqual(
    records.map((record) => record.label),
    ['three', 'one', 'four', 'one', 'five'],
  );
  assert.ok(records.every((record) => record.split === 'val'));
});

test('openIdx fails on a label byte past the class list, naming the record', async () => {
  const source = await openIdx(await pair('short-names', idxImages(rows, cols, images), idxLabels(labels)), {
    classNames: ['a', 'b', 'c', 'd'],
  });
  const { items, error } = await collectUntilError(source);
  assert.equal(items.length, 2);
  assert.ok(error instanceof FormatError);
  assert.equal(
    error.message,
    'IDX labels file "short-names-labels-idx1-ubyte" gives record 2 label 4, but only 4 class names were given',
  );
  assert.equal(error.index, 2);
});

test('openIdx refuses a wrong magic before reading records, and says when the files are swapped', async () => {
  const zero = await pair('zero', idxImages(rows, cols, images, { magic: 0 }), idxLabels(labels));
  await assert.rejects(openIdx(zero), {
    name: 'FormatError',
    message: 'IDX images file "zero-images-idx3-ubyte" has magic 0x00000000, expected 0x00000803',
  });
  const swapped = await pair('swapped', idxLabels(labels), idxImages(rows, cols, images));
  await assert.rejects(openIdx(swapped), {
    message:
      'IDX images file "swapped-images-idx3-ubyte" has magic 0x00000801, expected 0x00000803; it is a labels file',
  });
  const badLabels = await pair('bad-labels', idxImages(rows, cols, images), idxLabels(labels, { magic: 0x803 }));
  await assert.rejects(openIdx(badLabels), {
    message:
      'IDX labels file "bad-labels-labels-idx1-ubyte" has magic 0x00000803, expected 0x00000801; it is an images file',
  });
});

test('openIdx refuses files shorter than their header', async () => {
  const files = await pair('stub', Buffer.from([0, 0, 8, 3, 0]), idxLabels(labels));
  await assert.rejects(openIdx(files), {
    message: 'IDX images file "stub-images-idx3-ubyte" is 5 bytes long, shorter than its 16-byte header',
  });
});

test('openIdx refuses images and labels files whose counts differ', async () => {
  const files = await pair('mismatch', idxImages(rows, cols, images), idxLabels(labels.slice(0, 4)));
  await assert.rejects(openIdx(files), {
    message:
      'IDX images file "mismatch-images-idx3-ubyte" holds 5 images but labels file "mismatch-labels-idx1-ubyte" holds 4 labels',
  });
});

test('openIdx finds a truncated plain file at open, naming the cut record', async () => {
  const whole = idxImages(rows, cols, images);
  const files = await pair('cut', whole.subarray(0, 16 + 3 * 12 + 5), idxLabels(labels));
  await assert.rejects(openIdx(files), {
    message: 'IDX images file "cut-images-idx3-ubyte" is truncated at record 3 (5 of 12 bytes)',
  });
  const noLabels = await pair('cut-labels', whole, idxLabels(labels).subarray(0, 8 + 2));
  await assert.rejects(openIdx(noLabels), {
    message: 'IDX labels file "cut-labels-labels-idx1-ubyte" is truncated at record 2 (0 of 1 bytes)',
  });
});

test('openIdx refuses a plain file with bytes after its last record', async () => {
  const padded = Buffer.concat([idxImages(rows, cols, images), Buffer.alloc(7)]);
  await assert.rejects(openIdx(await pair('padded', padded, idxLabels(labels))), {
    message: 'IDX images file "padded-images-idx3-ubyte" has 7 bytes after its last record (5 records)',
  });
});

test('openIdx streams a truncated gzip file until the cut record, then fails naming it', async () => {
  const whole = idxImages(rows, cols, images);
  const files = await pair('cut-gz', gzip(whole.subarray(0, 16 + 3 * 12 + 5)), gzip(idxLabels(labels)));
  const source = await openIdx(files);
  const { items, error } = await collectUntilError(source);
  assert.equal(items.length, 3);
  assert.ok(error instanceof FormatError);
  assert.equal(error.message, 'IDX images file "cut-gz-images-idx3-ubyte" is truncated at record 3 (5 of 12 bytes)');
});

test('openIdx reports a gzip stream cut short as truncation at the record it was reading', async () => {
  const big = Array.from({ length: 200 }, (_, i) => pattern(i + 100, 28 * 28));
  const compressed = gzip(idxImages(28, 28, big));
  const files = await pair(
    'gz-cut',
    compressed.subarray(0, compressed.length - 4000),
    idxLabels(new Array(200).fill(7)),
  );
  const { items, error } = await collectUntilError(await openIdx(files));
  assert.ok(items.length > 0 && items.length < 200, `${items.length} records came before the cut`);
  assert.ok(error instanceof FormatError);
  assert.match(
    error.message,
    /^IDX images file "gz-cut-images-idx3-ubyte" is truncated at record \d+ \(the gzip stream ends early\)$/,
  );
});

test('openIdx refuses absurd dimensions from the header alone, without allocating', async () => {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x803, 0);
  header.writeUInt32BE(60000, 4);
  header.writeUInt32BE(100000, 8);
  header.writeUInt32BE(100000, 12);
  const files = await pair('huge', header, idxLabels(new Array(10).fill(0), { count: 60000 }));
  const started = performance.now();
  const heapBefore = process.memoryUsage().arrayBuffers;
  await assert.rejects(openIdx(files), {
    message:
      'IDX images file "huge-images-idx3-ubyte" claims 100000×100000 images (10000000000 pixels each), more than the limit of 16777216 pixels',
  });
  assert.ok(performance.now() - started < 1000, 'fails fast');
  assert.ok(process.memoryUsage().arrayBuffers - heapBefore < 1024 * 1024, 'allocates nothing big');
  const empty = Buffer.from(header);
  empty.writeUInt32BE(0, 8);
  await assert.rejects(openIdx(await pair('flat', empty, idxLabels([]))), {
    message: 'IDX images file "flat-images-idx3-ubyte" claims 0×100000 images, which have no pixels',
  });
});

test('openIdx fails fast on a gzip file whose header promises more records than it holds', async () => {
  const header = idxImages(28, 28, [pattern(1, 784)], { count: 1_000_000 });
  const files = await pair('liar', gzip(header), gzip(idxLabels([1], { count: 1_000_000 })));
  const source = await openIdx(files);
  assert.equal(source.total, 1_000_000);
  const { items, error } = await collectUntilError(source);
  assert.equal(items.length, 1);
  assert.equal(
    (error as Error).message,
    'IDX images file "liar-images-idx3-ubyte" is truncated at record 1 (0 of 784 bytes)',
  );
});

test('openIdx resumes from an index, reading past the records before it', async () => {
  const source = await openIdx(await pair('resume', gzip(idxImages(rows, cols, images)), idxLabels(labels)));
  assertRecords(await collect(source, 3), 3);
  assert.deepEqual(await collect(source, 5), []);
});

test('openIdx chains several pairs with one running index and a split per pair', async () => {
  const train = await pair('train', idxImages(rows, cols, images), idxLabels(labels));
  const test = await pair('t10k', idxImages(rows, cols, images.slice(0, 2)), idxLabels(labels.slice(0, 2)));
  const source = await openIdx([train, test]);
  assert.equal(source.total, 7);
  const records = await collect(source);
  assert.deepEqual(
    records.map((record) => [record.index, record.split]),
    [
      [0, 'train'],
      [1, 'train'],
      [2, 'train'],
      [3, 'train'],
      [4, 'train'],
      [5, 'test'],
      [6, 'test'],
    ],
  );
  assert.deepEqual(
    (await collect(source, 4)).map((record) => record.index),
    [4, 5, 6],
  );
});

test('a resumed IDX import passes over pairs before its position without opening them', async () => {
  const train = await pair('train', idxImages(rows, cols, images), idxLabels(labels));
  const test = await pair('t10k', idxImages(rows, cols, images.slice(0, 2)), idxLabels(labels.slice(0, 2)));
  const source = await openIdx([train, test]);
  await rm(train.images.path);
  await rm(train.labels.path);
  assert.deepEqual(
    (await collect(source, 6)).map((record) => [record.index, record.split]),
    [[6, 'test']],
  );
});

async function openFilesUnder(path: string): Promise<string[]> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((target) => target.startsWith(path));
}

test('breaking out of the records loop closes the files', async () => {
  const source = await openIdx(await pair('closing', gzip(idxImages(rows, cols, images)), idxLabels(labels)));
  for await (const record of source.records()) {
    assert.equal(record.index, 0);
    assert.ok((await openFilesUnder(dir.path)).length > 0, 'the images file is open while reading');
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(await openFilesUnder(dir.path), []);
});

test('openIdx streams 60,000 28×28 records with memory that stays flat', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const count = 60_000;
  const imageBytes = Buffer.alloc(16 + count * 784);
  imageBytes.writeUInt32BE(0x803, 0);
  imageBytes.writeUInt32BE(count, 4);
  imageBytes.writeUInt32BE(28, 8);
  imageBytes.writeUInt32BE(28, 12);
  for (let i = 16; i < imageBytes.length; i += 97) imageBytes[i] = i & 0xff;
  const labelBytes = idxLabels(Array.from({ length: count }, (_, i) => i % 10));
  const files = await pair('big', gzip(imageBytes), labelBytes);
  const source = await openIdx(files);
  gc();
  const retained = () => {
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
  const baseline = retained();
  let peak = 0;
  let seen = 0;
  for await (const record of source.records()) {
    assert.equal(record.index, seen++);
    if (seen % 10_000 === 0) {
      gc();
      peak = Math.max(peak, retained() - baseline);
    }
  }
  assert.equal(seen, count);
  // The images file is 47 MB; a reader that buffered it would show that here
  assert.ok(peak < 8 * 1024 * 1024, `retained memory grew by ${(peak / 1e6).toFixed(1)} MB`);
});
