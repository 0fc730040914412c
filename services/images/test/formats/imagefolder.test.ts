import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateRawSync } from 'node:zlib';
import { placeEntry } from '../../src/formats/archive-path.ts';
import { openImageFolder } from '../../src/formats/imagefolder.ts';
import { encodePng } from '../../src/formats/png.ts';
import {
  type EncodedRecord,
  FormatError,
  type ImportItem,
  type SkippedEntry,
  type Split,
} from '../../src/formats/types.ts';
import { collect, gzip, makeTar, makeZip, pattern, type TarEntry, type TempDir, tempDir } from './helpers.ts';

let dir: TempDir;

before(async () => {
  dir = await tempDir();
});

after(async () => {
  await dir.remove();
});

const png = (seed: number) => encodePng({ width: 4, height: 4, channels: 1, pixels: pattern(seed, 16) });
const images = (items: ImportItem[]) => items.filter((item): item is EncodedRecord => item.kind === 'encoded');
const skips = (items: ImportItem[]) => items.filter((item): item is SkippedEntry => item.kind === 'skipped');

async function archive(name: string, bytes: Uint8Array) {
  return { path: await dir.write(name, bytes), name };
}

// A well-formed tree in both layouts, under an optional top folder
const goodFiles: [string, number][] = [
  ['cat/1.png', 1],
  ['dog/2.PNG', 2],
  ['train/cat/3.png', 3],
  ['validation/dog/4.jpg', 4],
  ['set/bird/5.webp', 5],
  ['set/test/bird/6.png', 6],
];
const goodExpected: [string, Split | undefined, string][] = [
  ['cat', undefined, 'cat/1.png'],
  ['dog', undefined, 'dog/2.PNG'],
  ['cat', 'train', 'train/cat/3.png'],
  ['dog', 'val', 'validation/dog/4.jpg'],
  ['bird', undefined, 'set/bird/5.webp'],
  ['bird', 'test', 'set/test/bird/6.png'],
];

function assertGood(items: ImportItem[]) {
  const records = images(items);
  assert.deepEqual(
    records.map((record) => [record.label, record.split, record.name]),
    goodExpected,
  );
  records.forEach((record, i) => {
    assert.ok(record.bytes.equals(png(goodFiles[i]?.[1] ?? 0)), `bytes of ${record.name}`);
  });
}

for (const kind of ['tar', 'tar.gz'] as const) {
  test(`openImageFolder reads labels and splits from the paths of a ${kind}`, async () => {
    const tarBytes = await makeTar(
      goodFiles.map(([name, seed]) => ({ name, data: png(seed) })),
      { gzip: kind === 'tar.gz' },
    );
    const source = await openImageFolder(await archive(`good.${kind}`, tarBytes));
    assert.equal(source.format, 'imagefolder');
    assert.equal(source.archive, kind);
    assert.equal(source.total, undefined);
    assertGood(await collect(source));
  });
}

test('openImageFolder reads labels and splits from the paths of a zip, with an exact total', async () => {
  const zipBytes = makeZip(
    goodFiles.map(([name, seed], i) => ({ name, data: png(seed), method: i % 2 === 0 ? 8 : 0 })),
  );
  const source = await openImageFolder(await archive('good.zip', zipBytes));
  assert.equal(source.archive, 'zip');
  assert.equal(source.total, 6);
  assertGood(await collect(source));
});

test('openImageFolder gives entries without a split folder the split it is asked for', async () => {
  const tarBytes = await makeTar(goodFiles.map(([name, seed]) => ({ name, data: png(seed) })));
  const records = images(
    await collect(await openImageFolder(await archive('split.tar', tarBytes), { split: 'train' })),
  );
  assert.deepEqual(
    records.map((record) => record.split),
    ['train', 'train', 'train', 'val', 'train', 'test'],
  );
});

const hostileTar: TarEntry[] = [
  { name: 'cat/', type: 'directory' },
  { name: 'cat/ok.png', data: png(1) },
  { name: '../evil.png', data: png(2) },
  { name: '/etc/evil.png', data: png(3) },
  { name: 'cat/../../evil.png', data: png(4) },
  { name: 'cat/link.png', type: 'symlink', linkname: '/etc/passwd' },
  { name: 'cat/hard.png', type: 'link', linkname: 'cat/ok.png' },
  { name: 'cat/tty.png', type: 'character-device' },
  { name: 'cat/pipe.png', type: 'fifo' },
  { name: '.DS_Store', data: Buffer.from('junk') },
  { name: '__MACOSX/cat/._ok.png', data: Buffer.from('junk') },
  { name: 'cat/.hidden.png', data: png(5) },
  { name: 'root.png', data: png(6) },
  { name: 'a/b/c/d.png', data: png(7) },
  { name: 'a/train/c/d/e.png', data: png(8) },
  { name: 'cat/notes.txt', data: Buffer.from('hello') },
  { name: 'cat/README', data: Buffer.from('hello') },
  { name: 'cat/big.png', data: Buffer.alloc(5000) },
  { name: 'dog/ok.png', data: png(9) },
];

const hostileExpected: [string, string, boolean][] = [
  ['directory', 'Archive entry "cat/" is a directory; skipped', true],
  ['unsafe-path', 'Archive entry "../evil.png" climbs out of the archive; skipped', false],
  ['unsafe-path', 'Archive entry "/etc/evil.png" has an absolute path; skipped', false],
  ['unsafe-path', 'Archive entry "cat/../../evil.png" climbs out of the archive; skipped', false],
  ['link', 'Archive entry "cat/link.png" is a symbolic link; skipped', false],
  ['link', 'Archive entry "cat/hard.png" is a hard link; skipped', false],
  ['special', 'Archive entry "cat/tty.png" is a device, FIFO or other special file; skipped', false],
  ['special', 'Archive entry "cat/pipe.png" is a device, FIFO or other special file; skipped', false],
  ['hidden', 'Archive entry ".DS_Store" is a hidden or system file; skipped', true],
  ['hidden', 'Archive entry "__MACOSX/cat/._ok.png" is a hidden or system file; skipped', true],
  ['hidden', 'Archive entry "cat/.hidden.png" is a hidden or system file; skipped', true],
  ['layout', 'Archive entry "root.png" is not inside a label folder; skipped', false],
  [
    'layout',
    'Archive entry "a/b/c/d.png" is nested too deep: expected <label>/<file> or <split>/<label>/<file>; skipped',
    false,
  ],
  [
    'layout',
    'Archive entry "a/train/c/d/e.png" is nested too deep: expected <label>/<file> or <split>/<label>/<file>; skipped',
    false,
  ],
  ['extension', 'Archive entry "cat/notes.txt" is not an image (it has extension ".txt"); skipped', false],
  ['extension', 'Archive entry "cat/README" is not an image (it has no file extension); skipped', false],
  ['too-large', 'Archive entry "cat/big.png" is 5000 bytes, more than the limit of 4096; skipped', false],
];

test('openImageFolder skips hostile and stray tar entries with reasons and keeps the good ones', async () => {
  const tarBytes = await makeTar(hostileTar, { gzip: true });
  const items = await collect(
    await openImageFolder(await archive('hostile.tar.gz', tarBytes), { maxEntryBytes: 4096 }),
  );
  assert.deepEqual(
    images(items).map((record) => [record.index, record.name, record.label]),
    [
      [1, 'cat/ok.png', 'cat'],
      [18, 'dog/ok.png', 'dog'],
    ],
  );
  assert.deepEqual(
    skips(items).map((skip) => [skip.cause, skip.reason, skip.benign]),
    hostileExpected,
  );
  assert.deepEqual(
    items.map((item) => item.index),
    Array.from({ length: hostileTar.length }, (_, i) => i),
    'every entry is accounted for, in order',
  );
});

test('openImageFolder skips hostile zip entries: traversal, absolute, backslashes, links, devices', async () => {
  const zipBytes = makeZip([
    { name: 'cat/', data: new Uint8Array(), method: 0 },
    { name: 'cat/ok.png', data: png(1) },
    { name: '../evil.png', data: png(2) },
    { name: '/abs/evil.png', data: png(3) },
    { name: 'C:/evil/x.png', data: png(4) },
    { name: '..\\..\\evil.png', data: png(5) },
    { name: 'cat/link.png', data: Buffer.from('/etc/passwd'), unixMode: 0o120777 },
    { name: 'cat/fifo.png', data: new Uint8Array(), unixMode: 0o010644 },
    { name: 'cat/unix.png', data: png(6), unixMode: 0o100644 },
    { name: '__MACOSX/cat/._unix.png', data: Buffer.from('junk') },
  ]);
  const source = await openImageFolder(await archive('hostile.zip', zipBytes));
  assert.equal(source.total, 2);
  const items = await collect(source);
  assert.deepEqual(
    images(items).map((record) => record.name),
    ['cat/ok.png', 'cat/unix.png'],
  );
  assert.deepEqual(
    skips(items).map((skip) => [skip.name, skip.cause]),
    [
      ['cat/', 'directory'],
      ['../evil.png', 'unsafe-path'],
      ['/abs/evil.png', 'unsafe-path'],
      ['C:/evil/x.png', 'unsafe-path'],
      ['../../evil.png', 'unsafe-path'],
      ['cat/link.png', 'link'],
      ['cat/fifo.png', 'special'],
      ['__MACOSX/cat/._unix.png', 'hidden'],
    ],
  );
});

test('openImageFolder skips zip entries that lie about their size or checksum and reads on', async () => {
  const bomb = Buffer.alloc(2 * 1024 * 1024);
  const zipBytes = makeZip([
    { name: 'cat/bomb.png', data: bomb, declaredSize: 4000 },
    { name: 'cat/liar.png', data: bomb, declaredSize: 100 },
    { name: 'cat/short.png', data: png(1), declaredSize: png(1).length + 10 },
    { name: 'cat/crc.png', data: png(2), crc: 1234 },
    { name: 'cat/big.png', data: bomb },
    { name: 'cat/ok.png', data: png(3) },
  ]);
  const items = await collect(
    await openImageFolder(await archive('lying.zip', zipBytes), { maxEntryBytes: 64 * 1024 }),
  );
  assert.deepEqual(
    images(items).map((record) => record.name),
    ['cat/ok.png'],
  );
  const reasons = skips(items).map((skip) => [skip.cause, skip.reason]);
  assert.deepEqual(reasons.slice(0, 4), [
    [
      'corrupt',
      'Archive entry "cat/bomb.png" is corrupt (it inflates to more than the 4000 bytes it declares); skipped',
    ],
    ['corrupt', 'Archive entry "cat/liar.png" is corrupt (2049 compressed bytes cannot hold 100); skipped'],
    [
      'corrupt',
      `Archive entry "cat/short.png" is corrupt (it holds ${png(1).length} bytes, not the ${png(1).length + 10} it declares); skipped`,
    ],
    ['corrupt', 'Archive entry "cat/crc.png" is corrupt (its CRC-32 does not match); skipped'],
  ]);
  assert.deepEqual(reasons[4], [
    'too-large',
    'Archive entry "cat/big.png" is 2097152 bytes, more than the limit of 65536; skipped',
  ]);
});

test('openImageFolder skips encrypted zip entries and unsupported compression methods', async () => {
  const zipBytes = makeZip([
    { name: 'cat/secret.png', data: png(1), method: 0, encrypted: true, declaredSize: png(1).length - 12 },
    { name: 'cat/lzma.png', data: png(2), method: 14 },
    { name: 'cat/ok.png', data: png(3) },
  ]);
  const items = await collect(await openImageFolder(await archive('methods.zip', zipBytes)));
  assert.deepEqual(
    skips(items).map((skip) => [skip.cause, skip.reason]),
    [
      ['unsupported', 'Archive entry "cat/secret.png" is encrypted; skipped'],
      ['unsupported', 'Archive entry "cat/lzma.png" uses compression method 14, which is not supported; skipped'],
    ],
  );
  assert.equal(images(items).length, 1);
});

test('openImageFolder refuses a zip listing more entries than allowed before reading any', async () => {
  const zipBytes = makeZip(Array.from({ length: 6 }, (_, i) => ({ name: `cat/${i}.png`, data: png(i) })));
  await assert.rejects(openImageFolder(await archive('many.zip', zipBytes), { maxEntries: 5 }), {
    name: 'FormatError',
    message: 'Archive "many.zip" has 6 entries, more than the limit of 5',
  });
});

test('openImageFolder stops a tar at the entry past the limit', async () => {
  const tarBytes = await makeTar(Array.from({ length: 6 }, (_, i) => ({ name: `cat/${i}.png`, data: png(i) })));
  const source = await openImageFolder(await archive('many.tar', tarBytes), { maxEntries: 5 });
  const seen: ImportItem[] = [];
  await assert.rejects(
    (async () => {
      for await (const item of source.records()) seen.push(item);
    })(),
    { message: 'Archive "many.tar" has more than 5 entries' },
  );
  assert.equal(seen.length, 5);
});

test('openImageFolder stops a tar.gz that expands past the total limit', async () => {
  // 4 MB of zeros compress to a few KB: the kind of ratio a gzip bomb relies on
  const tarBytes = await makeTar(
    Array.from({ length: 4 }, (_, i) => ({ name: `cat/${i}.png`, data: Buffer.alloc(1024 * 1024) })),
    { gzip: true },
  );
  assert.ok(tarBytes.length < 64 * 1024);
  const source = await openImageFolder(await archive('bomb.tar.gz', tarBytes), {
    maxEntryBytes: 1024,
    maxTotalBytes: 3 * 1024 * 1024,
  });
  await assert.rejects(collect(source), {
    message: `Archive "bomb.tar.gz" holds more than ${3 * 1024 * 1024} bytes uncompressed`,
  });
});

test('openImageFolder fails on a truncated tar.gz and on a tar with a broken header', async () => {
  const whole = await makeTar(
    Array.from({ length: 20 }, (_, i) => ({ name: `cat/${i}.png`, data: pattern(i, 20_000) })),
    { gzip: true },
  );
  const cut = await openImageFolder(await archive('cut.tar.gz', whole.subarray(0, whole.length / 2)));
  await assert.rejects(collect(cut), (error) => {
    assert.ok(error instanceof FormatError);
    assert.match(error.message, /^Archive "cut.tar.gz" is truncated \(the gzip stream ends early\)$/);
    return true;
  });
  const plain = await makeTar([
    { name: 'cat/1.png', data: png(1) },
    { name: 'cat/2.png', data: png(2) },
  ]);
  const broken = Buffer.from(plain);
  broken.fill(0x41, 1024, 1024 + 148); // the second header's name, mode, ids, size and time
  await assert.rejects(collect(await openImageFolder(await archive('broken.tar', broken))), {
    name: 'FormatError',
    message: 'Archive "broken.tar" is not a readable tar file: an entry header is invalid',
  });
  const cutPlain = plain.subarray(0, 512 + 100);
  await assert.rejects(collect(await openImageFolder(await archive('cut.tar', cutPlain))), {
    name: 'FormatError',
    message: 'Archive "cut.tar" is not a readable tar file: it ends in the middle of an entry',
  });
});

test('openImageFolder refuses files that are not archives and zips without an end record', async () => {
  await assert.rejects(openImageFolder(await archive('plain.bin', pattern(1, 2000))), {
    message: 'File "plain.bin" is not a zip, tar or tar.gz archive',
  });
  await assert.rejects(openImageFolder(await archive('gz.bin', gzip(pattern(1, 2000)))), {
    message: 'File "gz.bin" is not a zip, tar or tar.gz archive',
  });
  const zip = makeZip([{ name: 'cat/1.png', data: png(1) }]);
  await assert.rejects(openImageFolder(await archive('cut.zip', zip.subarray(0, zip.length - 10))), (error) => {
    assert.ok(error instanceof FormatError);
    assert.match(error.message, /^Archive "cut.zip" is not a readable zip file: /);
    return true;
  });
});

test('openImageFolder resumes from an entry index without reading the entries before it', async () => {
  const entries = Array.from({ length: 5 }, (_, i) => ({ name: `cat/${i}.png`, data: png(i) }));
  for (const [name, bytes] of [
    ['resume.tar', await makeTar(entries)],
    ['resume.zip', makeZip(entries)],
  ] as const) {
    const items = await collect(await openImageFolder(await archive(name, bytes)), 3);
    assert.deepEqual(
      items.map((item) => item.index),
      [3, 4],
      name,
    );
  }
});

test('an entry too large is skipped without being buffered', async () => {
  const tarBytes = await makeTar([
    { name: 'cat/huge.png', data: Buffer.alloc(64 * 1024 * 1024) },
    { name: 'cat/ok.png', data: png(1) },
  ]);
  const source = await openImageFolder(await archive('huge.tar', tarBytes), { maxEntryBytes: 1024 * 1024 });
  // collect garbage and sample while the entry drains, so the peak is memory held, not chunks
  // already let go that the collector had not got round to
  const collect = forceGc();
  collect();
  const before = process.memoryUsage().arrayBuffers;
  let peak = 0;
  const sample = () => {
    collect();
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
  };
  const sampler = setInterval(sample, 5);
  const items: ImportItem[] = [];
  try {
    for await (const item of source.records()) {
      items.push(item);
      sample();
    }
  } finally {
    clearInterval(sampler);
  }
  assert.deepEqual(
    items.map((item) => item.kind),
    ['skipped', 'encoded'],
  );
  assert.ok(peak < 32 * 1024 * 1024, `grew by ${(peak / 1e6).toFixed(1)} MB`);
});

test('placeEntry normalises ./ prefixes and accented labels, and maps split folder names', () => {
  const extensions = new Set(['.png']);
  assert.deepEqual(placeEntry('./cat/1.png', extensions), { ok: true, label: 'cat', split: undefined, file: '1.png' });
  const decomposed = 'cafe\u0301/1.png';
  const place = placeEntry(decomposed, extensions);
  assert.ok(place.ok);
  assert.equal(place.label, 'caf\u00e9');
  assert.deepEqual(
    ['train', 'test', 'val', 'valid', 'validation'].map((split) => {
      const placed = placeEntry(`${split}/cat/1.png`, extensions);
      return placed.ok ? placed.split : placed.reason;
    }),
    ['train', 'test', 'val', 'val', 'val'],
  );
  const top = placeEntry('mnist/7/1.png', extensions);
  assert.ok(top.ok);
  assert.deepEqual([top.label, top.split], ['7', undefined]);
});

test('zip entries with a deflate stream that does not decode are skipped as corrupt', async () => {
  const zipBytes = makeZip([{ name: 'cat/ok.png', data: png(1) }]);
  // Overwrite the deflate data with bytes that are not a valid deflate stream
  const start = 30 + 'cat/ok.png'.length;
  const length = deflateRawSync(png(1)).length;
  zipBytes.fill(0xff, start, start + length);
  const items = await collect(await openImageFolder(await archive('garbled.zip', zipBytes)));
  assert.equal(items[0]?.kind, 'skipped');
  assert.equal((items[0] as SkippedEntry).cause, 'corrupt');
});

test('zip entries larger than the read window, stored or deflated, come out whole', async () => {
  const big = Buffer.from(pattern(7, 300_000));
  const zipBytes = makeZip([
    { name: 'cat/stored.png', data: big, method: 0 },
    { name: 'cat/deflated.png', data: big },
    { name: 'cat/small.png', data: png(1) },
  ]);
  const records = images(await collect(await openImageFolder(await archive('big.zip', zipBytes))));
  assert.deepEqual(
    records.map((record) => record.name),
    ['cat/stored.png', 'cat/deflated.png', 'cat/small.png'],
  );
  assert.ok(records[0]?.bytes.equals(big));
  assert.ok(records[1]?.bytes.equals(big));
  assert.ok(records[2]?.bytes.equals(png(1)));
});

/** The collector as a function, without starting the test process with --expose-gc. */
function forceGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
