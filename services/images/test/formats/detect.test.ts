import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openImport, planImport, sniffFile } from '../../src/formats/detect.ts';
import type { FileRef, FormatName, ImportItem } from '../../src/formats/types.ts';
import {
  cifarBatch,
  collect,
  gzip,
  idxImages,
  idxLabels,
  makeTar,
  makeZip,
  pattern,
  type TempDir,
  tempDir,
} from './helpers.ts';

let dir: TempDir;

before(async () => {
  dir = await tempDir();
});

after(async () => {
  await dir.remove();
});

async function file(name: string, bytes: Uint8Array): Promise<FileRef> {
  // Stored under a temp name, as the service saves uploads: only `name` carries the client's name
  return { path: await dir.write(`upload-${Math.random().toString(36).slice(2)}`, bytes), name };
}

// Label and split of a record; skipped entries have neither
const placed = (item: ImportItem) => (item.kind === 'skipped' ? [item.reason] : [item.label, item.split]);

async function plan(files: FileRef[], format?: FormatName) {
  const sniffed = [];
  for (const one of files) sniffed.push(await sniffFile(one));
  return planImport(sniffed, format);
}

const idxPair = async (prefix: string, compress = false) => {
  const images = idxImages(2, 2, [pattern(1, 4), pattern(2, 4)]);
  const labels = idxLabels([1, 2]);
  return {
    images: await file(`${prefix}-images-idx3-ubyte${compress ? '.gz' : ''}`, compress ? gzip(images) : images),
    labels: await file(`${prefix}-labels-idx1-ubyte${compress ? '.gz' : ''}`, compress ? gzip(labels) : labels),
  };
};

test('an IDX pair is detected by its magics whatever order the files come in', async () => {
  const { images, labels } = await idxPair('train', true);
  assert.deepEqual(await plan([labels, images]), { format: 'idx', pairs: [{ images, labels }] });
  assert.deepEqual(await plan([images, labels], 'idx'), { format: 'idx', pairs: [{ images, labels }] });
});

test('two IDX pairs are matched by name: train-images with train-labels, t10k-images with t10k-labels', async () => {
  const train = await idxPair('train');
  const t10k = await idxPair('t10k', true);
  const result = await plan([train.labels, t10k.images, train.images, t10k.labels]);
  assert.deepEqual(result, {
    format: 'idx',
    pairs: [
      { images: t10k.images, labels: t10k.labels },
      { images: train.images, labels: train.labels },
    ],
  });
});

test('IDX files that cannot be paired are refused with the file named', async () => {
  const train = await idxPair('train');
  const other = await file('other-images-idx3-ubyte', idxImages(2, 2, [pattern(3, 4)]));
  await assert.rejects(plan([train.images, train.labels, other]), {
    message:
      'IDX images file "other-images-idx3-ubyte" has no labels file named like it (e.g. "train-images-idx3-ubyte" goes with "train-labels-idx1-ubyte")',
  });
  await assert.rejects(plan([train.labels]), {
    message: 'IDX import of "train-labels-idx1-ubyte" has labels but no images file',
  });
});

test('IDX next to a file of another kind is refused', async () => {
  const train = await idxPair('train');
  const zip = await file('pics.zip', makeZip([{ name: 'cat/1.png', data: pattern(1, 10) }]));
  await assert.rejects(plan([train.images, train.labels, zip]), {
    message:
      'File "pics.zip" is a zip archive (its first bytes are 0x504b0304), not an IDX images (0x00000803) or labels (0x00000801) file',
  });
});

test('CIFAR-10 batches are detected by whole 3073-byte records, with a class names file beside them', async () => {
  const records = [
    { label: 2, rgb: pattern(1, 3072) },
    { label: 7, rgb: pattern(2, 3072) },
    { label: 0, rgb: pattern(3, 3072) },
  ];
  const second = await file('data_batch_10.bin', cifarBatch(records));
  const first = await file('data_batch_2.bin.gz', gzip(cifarBatch(records)));
  const meta = await file(
    'batches.meta.txt',
    Buffer.from('airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n'),
  );
  assert.deepEqual(await plan([second, meta, first]), {
    format: 'cifar10',
    input: { batches: [first, second], meta },
  });
  assert.deepEqual(await plan([second]), { format: 'cifar10', input: { batches: [second] } });
  const readme = await file('readme.html', Buffer.from('<html>CIFAR-10</html>\n'));
  await assert.rejects(plan([second, readme]), {
    message:
      'File "readme.html" is a text file, neither a CIFAR-10 batch nor a class names file like "batches.meta.txt"',
  });
  await assert.rejects(plan([second, meta, await file('labels.txt', Buffer.from('a\nb\n'))]), {
    message: 'A CIFAR-10 import takes at most one class names file, but got "batches.meta.txt", "labels.txt"',
  });
});

test('ImageFolder archives are detected by magic: zip, tar and tar.gz', async () => {
  const entries = [{ name: 'cat/1.png', data: pattern(1, 10) }];
  for (const archive of [
    await file('a.zip', makeZip(entries)),
    await file('a.tar', await makeTar(entries)),
    await file('a.tgz', await makeTar(entries, { gzip: true })),
  ]) {
    assert.deepEqual(await plan([archive]), { format: 'imagefolder', archive });
  }
});

test('files of no known kind get an error saying why and how to name the format', async () => {
  const random = await file('mystery.dat', pattern(1, 5000));
  await assert.rejects(plan([random]), {
    name: 'FormatError',
    message:
      'Cannot tell the format of "mystery.dat": it is not an IDX file or a zip or tar archive, and its 5000 bytes are not a whole number of 3073-byte CIFAR-10 records; say which with format=idx, cifar10 or imagefolder',
  });
  const cifar100 = await file('train.bin', Buffer.alloc(3074 * 2));
  await assert.rejects(
    plan([cifar100]),
    /its 6148 bytes look like CIFAR-100 \(3074-byte records\), which is not supported/,
  );
  const badLabel = Buffer.alloc(3073 * 2);
  badLabel[3073] = 200;
  await assert.rejects(
    plan([await file('odd.bin', badLabel)]),
    /its record 1 has label byte 200, not a CIFAR-10 class/,
  );
  await assert.rejects(plan([await file('notes.txt', Buffer.from('hello\n'))]), /only text files were sent/);
  await assert.rejects(plan([]), { message: 'No files were sent; an import needs at least one' });
});

test('a declared format the files do not fit is refused naming the file', async () => {
  const zip = await file('pics.zip', makeZip([{ name: 'cat/1.png', data: pattern(1, 10) }]));
  const batch = await file('data_batch_1.bin', cifarBatch([{ label: 1, rgb: pattern(1, 3072) }]));
  await assert.rejects(plan([batch], 'imagefolder'), {
    message: 'File "data_batch_1.bin" is a binary file, not a zip, tar or tar.gz archive',
  });
  await assert.rejects(plan([zip], 'cifar10'), { message: 'File "pics.zip" is a zip archive, not a CIFAR-10 batch' });
  await assert.rejects(plan([zip, zip]), /An ImageFolder import takes one archive, but 2 files were sent/);
  await assert.rejects(plan([batch], 'png' as FormatName), {
    message: 'Format "png" is not one of idx, cifar10, imagefolder',
  });
});

test('a file that starts like gzip but is not is refused as such', async () => {
  const fake = Buffer.concat([Buffer.from([0x1f, 0x8b]), pattern(1, 100)]);
  await assert.rejects(
    sniffFile(await file('fake.gz', fake)),
    /^FormatError: File "fake.gz" starts like gzip but is not valid gzip: /,
  );
});

test('openImport opens the detected reader: IDX, CIFAR-10 and ImageFolder records come out', async () => {
  const { images, labels } = await idxPair('train', true);
  const idx = await openImport([labels, images], { classNames: ['zero', 'one', 'two'] });
  assert.equal(idx.format, 'idx');
  assert.deepEqual((await collect(idx)).map(placed), [
    ['one', 'train'],
    ['two', 'train'],
  ]);

  const batch = await file('test_batch.bin', cifarBatch([{ label: 4, rgb: pattern(1, 3072) }]));
  const cifar = await openImport([batch]);
  assert.deepEqual((await collect(cifar)).map(placed), [['deer', 'test']]);

  const tar = await file(
    'set.tar.gz',
    await makeTar([{ name: 'val/cat/1.png', data: pattern(1, 10) }], { gzip: true }),
  );
  const folder = await openImport([tar], { format: 'imagefolder', split: 'train' });
  const items = await collect(folder);
  assert.equal(items[0]?.kind, 'encoded');
  assert.deepEqual(items.map(placed), [['cat', 'val']]);
});
