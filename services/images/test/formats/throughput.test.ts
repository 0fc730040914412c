import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openIdx } from '../../src/formats/idx.ts';
import { encodePng } from '../../src/formats/png.ts';
import { gzip, idxImages, idxLabels, pattern, type TempDir, tempDir } from './helpers.ts';

let dir: TempDir;

before(async () => {
  dir = await tempDir();
});

after(async () => {
  await dir.remove();
});

// The import target is 2,000 images/s end to end; reading and encoding must leave most of the
// time to hashing, files and the database. Measured at about 22,000 per CPU second; the bound
// leaves room for slower machines.
test('IDX reading plus PNG encoding of 28×28 images runs well above the import target', async () => {
  const count = 10_000;
  const digits = Array.from({ length: 100 }, (_, i) => {
    const image = pattern(i + 1, 784);
    // mostly black with bright strokes, like MNIST, so deflate has real work of the usual kind
    return image.map((value) => (value > 200 ? value : 0));
  });
  const images = await dir.write(
    'train-images',
    gzip(
      idxImages(
        28,
        28,
        Array.from({ length: count }, (_, i) => digits[i % 100] as Uint8Array),
      ),
    ),
  );
  const labels = await dir.write('train-labels', idxLabels(Array.from({ length: count }, (_, i) => i % 10)));
  const source = await openIdx({ images: { path: images }, labels: { path: labels } });
  // CPU time, not wall time: other processes on the machine must not fail the test
  const started = process.cpuUsage();
  let bytes = 0;
  for await (const record of source.records()) bytes += encodePng(record).length;
  const used = process.cpuUsage(started);
  const perCpuSecond = count / ((used.user + used.system) / 1e6);
  assert.ok(bytes > 0);
  assert.ok(perCpuSecond > 6_000, `${Math.round(perCpuSecond)} images per CPU second`);
});
