import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { CIFAR10_CLASSES, openCifar, parseClassNames } from '../../src/formats/cifar.ts';
import { FormatError } from '../../src/formats/types.ts';
import { cifarBatch, collect, collectUntilError, gzip, pattern, type TempDir, tempDir } from './helpers.ts';

let dir: TempDir;
const train = [
  { label: 0, rgb: pattern(1, 3072) },
  { label: 9, rgb: pattern(2, 3072) },
  { label: 3, rgb: pattern(3, 3072) },
];
const testRecords = [{ label: 5, rgb: pattern(4, 3072) }];

before(async () => {
  dir = await tempDir();
});

after(async () => {
  await dir.remove();
});

async function file(name: string, bytes: Uint8Array) {
  return { path: await dir.write(name, bytes), name };
}

test('openCifar turns planar records into interleaved RGB with CIFAR-10 names and splits from batch names', async () => {
  const batches = [
    await file('data_batch_1.bin', cifarBatch(train)),
    await file('test_batch.bin', cifarBatch(testRecords)),
  ];
  const source = await openCifar({ batches });
  assert.equal(source.format, 'cifar10');
  assert.equal(source.total, 4);
  assert.deepEqual(source.classNames, CIFAR10_CLASSES);
  const records = await collect(source);
  assert.deepEqual(
    records.map((record) => [record.index, record.label, record.split, record.name]),
    [
      [0, 'airplane', 'train', 'data_batch_1.bin#0'],
      [1, 'truck', 'train', 'data_batch_1.bin#1'],
      [2, 'cat', 'train', 'data_batch_1.bin#2'],
      [3, 'dog', 'test', 'test_batch.bin#0'],
    ],
  );
  [...train, ...testRecords].forEach((expected, i) => {
    const record = records[i];
    assert.equal(record?.width, 32);
    assert.equal(record?.height, 32);
    assert.equal(record?.channels, 3);
    assert.deepEqual(record?.pixels, expected.rgb);
  });
});

test('openCifar puts the red plane first: a pure red record comes out as red pixels', async () => {
  const bytes = Buffer.alloc(3073);
  bytes[0] = 1;
  bytes.fill(255, 1, 1 + 1024);
  const [record] = await collect(await openCifar({ batches: [await file('red.bin', bytes)] }));
  assert.deepEqual([...(record?.pixels.subarray(0, 6) ?? [])], [255, 0, 0, 255, 0, 0]);
  assert.equal(record?.split, undefined);
});

test('openCifar reads gzip batches and takes the total from the gzip trailer', async () => {
  const source = await openCifar({ batches: [await file('data_batch_2.bin.gz', gzip(cifarBatch(train)))] });
  assert.equal(source.total, 3);
  const records = await collect(source);
  assert.deepEqual(
    records.map((record) => record.pixels),
    train.map((record) => record.rgb),
  );
});

test('openCifar names classes from batches.meta.txt, ignoring trailing blank lines and CRLF', async () => {
  const meta = await file('batches.meta.txt', Buffer.from('a\r\nb\r\nc\r\nd\r\n\r\n\r\n'));
  const batch = await file('data_batch_3.bin', cifarBatch([{ label: 3, rgb: pattern(9, 3072) }]));
  const source = await openCifar({ batches: [batch], meta });
  assert.deepEqual(source.classNames, ['a', 'b', 'c', 'd']);
  assert.equal((await collect(source))[0]?.label, 'd');
});

test('parseClassNames refuses empty lines, duplicates and empty lists', () => {
  assert.throws(() => parseClassNames('cat\n\ndog\n', 'm.txt'), {
    message: 'Class names file "m.txt" has an empty line 2',
  });
  assert.throws(() => parseClassNames('cat\ndog\ncat\n', 'm.txt'), {
    message: 'Class names file "m.txt" names "cat" twice (lines 1 and 3)',
  });
  assert.throws(() => parseClassNames('\n\n', 'm.txt'), { message: 'Class names file "m.txt" names no classes' });
});

test('openCifar fails at open on a plain batch whose last record is cut, naming the record', async () => {
  const whole = cifarBatch(train);
  const batch = await file('data_batch_4.bin', whole.subarray(0, 2 * 3073 + 1800));
  await assert.rejects(openCifar({ batches: [batch] }), {
    name: 'FormatError',
    message: 'CIFAR-10 batch "data_batch_4.bin" is truncated at record 2 (1800 of 3073 bytes)',
  });
});

test('openCifar streams a cut gzip batch up to the cut record, then fails naming it', async () => {
  const whole = cifarBatch(train);
  const batch = await file('data_batch_5.bin.gz', gzip(whole.subarray(0, 2 * 3073 + 1800)));
  const source = await openCifar({ batches: [batch] });
  assert.equal(source.total, undefined, 'a trailer size that is not whole records gives no total');
  const { items, error } = await collectUntilError(source);
  assert.equal(items.length, 2);
  assert.ok(error instanceof FormatError);
  assert.equal(error.message, 'CIFAR-10 batch "data_batch_5.bin.gz" is truncated at record 2 (1800 of 3073 bytes)');
  assert.equal(error.index, 2);
});

test('openCifar fails on a label byte with no class, naming the record', async () => {
  const batch = await file(
    'bad_labels.bin',
    cifarBatch([train[0] as (typeof train)[0], { label: 10, rgb: pattern(5, 3072) }]),
  );
  const { items, error } = await collectUntilError(await openCifar({ batches: [batch] }));
  assert.equal(items.length, 1);
  assert.equal(
    (error as Error).message,
    'CIFAR-10 batch "bad_labels.bin" gives record 1 label 10, but there are only 10 class names',
  );
});

test('openCifar refuses an empty batch and an import without batches', async () => {
  await assert.rejects(openCifar({ batches: [await file('empty.bin', new Uint8Array())] }), {
    message: 'CIFAR-10 batch "empty.bin" is empty',
  });
  await assert.rejects(openCifar({ batches: [] }), { message: 'A CIFAR-10 import needs at least one batch file' });
});

test('openCifar resumes from an index across batches, and a split option overrides the names', async () => {
  const batches = [
    await file('data_batch_1.bin', cifarBatch(train)),
    await file('test_batch.bin', cifarBatch(testRecords)),
  ];
  const source = await openCifar({ batches }, { split: 'val' });
  const records = await collect(source, 2);
  assert.deepEqual(
    records.map((record) => [record.index, record.split]),
    [
      [2, 'val'],
      [3, 'val'],
    ],
  );
});

test('a resumed CIFAR-10 import passes over plain batches before its position without opening them', async () => {
  const first = await file('data_batch_1.bin', cifarBatch(train));
  const second = await file('test_batch.bin', cifarBatch(testRecords));
  const source = await openCifar({ batches: [first, second] });
  await rm(first.path);
  const records = await collect(source, 3);
  assert.deepEqual(
    records.map((record) => [record.index, record.label]),
    [[3, 'dog']],
  );
});
