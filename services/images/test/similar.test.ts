import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { Analyser } from '../src/analysis/analyse.ts';
import { bandOf, dhash, fromSigned, hammingDistance, toSigned } from '../src/analysis/dhash.ts';
import { analyseBytes, unpackSignature } from '../src/analysis/signature.ts';
import { DEFAULT_THRESHOLD } from '../src/analysis/verify.ts';
import { analysisStore } from '../src/db/analysis.ts';
import { leaksSql } from '../src/db/similarity.ts';
import { uuidv7 } from '../src/ids.ts';
import { THUMBNAIL_SIZES } from '../src/storage/store.ts';
import { tempDir, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { copiesOf, scene } from './helpers/pictures.ts';

const MAX_PIXELS = 4_000_000;

let db: TestDatabase;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ctx: Awaited<ReturnType<typeof testApp>>;
let analyser: Analyser;

before(async () => {
  db = await createTestDatabase();
  dir = await tempDir();
  ctx = await testApp(db.url, dir.path, { MAX_UPLOAD_BYTES: 1024 * 1024, MAX_PIXELS });
  analyser = new Analyser(analysisStore(ctx.pool), ctx.store, {
    consumer: 'similar-test',
    maxPixels: MAX_PIXELS,
  });
});

after(async () => {
  await ctx?.app.close();
  await db?.drop();
  await dir?.remove();
});

async function upload(bytes: Buffer, fields: Record<string, string>) {
  const type = (await sharp(bytes).metadata()).format;
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/images?${new URLSearchParams(fields)}`,
    payload: bytes,
    headers: { 'content-type': `image/${type}` },
  });
  assert.equal(response.statusCode, 201, response.body);
  return response.json() as { id: string; sha256: string; updatedAt: string; dataset: string };
}

/** Uploads and analyses at once, as the worker would once the created event arrives. */
async function analysed(bytes: Buffer, fields: Record<string, string>) {
  const image = await upload(bytes, fields);
  assert.equal(await analyser.apply(uuidv7(), image.id), 'applied');
  return image;
}

async function row(id: string) {
  const [found] = await db.query<{
    phash: string | null;
    analysis_status: string | null;
    analysis_error: string | null;
    analysed_at: Date | null;
    signature: Buffer | null;
  }>(
    `SELECT phash, analysis_status, analysis_error, analysed_at, s.signature
     FROM images i LEFT JOIN image_signatures s ON s.image_id = i.id WHERE i.id = $1`,
    [id],
  );
  assert.ok(found, `row ${id}`);
  return found;
}

const get = (url: string) => ctx.app.inject({ method: 'GET', url });

test('dHash puts resized and recompressed copies of a picture a few bits away, and other pictures far away', async () => {
  for (const seed of [1, 5, 11]) {
    const picture = await scene(seed);
    const hash = await dhash(picture, MAX_PIXELS);
    for (const copy of await copiesOf(picture)) {
      const distance = hammingDistance(hash, await dhash(copy, MAX_PIXELS));
      assert.ok(distance <= 5, `seed ${seed}: a copy is ${distance} bits away`);
    }
    for (const other of [100, 101, 102, 103]) {
      const distance = hammingDistance(hash, await dhash(await scene(other), MAX_PIXELS));
      assert.ok(distance >= 15, `seed ${seed}: picture ${other} is only ${distance} bits away`);
    }
  }
});

test('a hash survives the round trip through a signed bigint column, and SQL cuts the same bands', async () => {
  // top bit set: negative as a PostgreSQL bigint
  const hash = 0xf0e1d2c3b4a59687n;
  const [found] = await db.query<{ back: string; b0: string; b1: string; b2: string; b3: string }>(
    `SELECT $1::int8::text AS back, (($1::int8 >> 48) & 65535)::text AS b0, (($1::int8 >> 32) & 65535)::text AS b1,
       (($1::int8 >> 16) & 65535)::text AS b2, ($1::int8 & 65535)::text AS b3`,
    [toSigned(hash)],
  );
  assert.ok(found);
  assert.equal(fromSigned(found.back), hash);
  assert.deepEqual(
    [found.b0, found.b1, found.b2, found.b3].map(Number),
    [0, 1, 2, 3].map((band) => bandOf(hash, band)),
  );
});

test('analysing an image puts its hash and signature on the row, and leaves updatedAt alone', async () => {
  const image = await upload(await scene(21), { dataset: 'analyse', split: 'train' });
  assert.equal((await row(image.id)).analysis_status, null);
  assert.equal(await analyser.apply(uuidv7(), image.id), 'applied');
  const found = await row(image.id);
  assert.equal(found.analysis_status, 'done');
  assert.equal(fromSigned(found.phash as string), (await analyseBytes(await scene(21), MAX_PIXELS)).hash);
  assert.ok(found.signature);
  assert.equal(unpackSignature(found.signature).content.length, 32 * 32);
  // thumbnails are made on first request, not by the worker
  for (const size of THUMBNAIL_SIZES) {
    await assert.rejects(stat(ctx.store.thumbnailPath(image.sha256, size)), { code: 'ENOENT' });
  }
  const served = (await get(`/images/${image.id}`)).json();
  assert.equal(served.updatedAt, image.updatedAt);
});

test('the same event applied twice changes the row once', async () => {
  const image = await upload(await scene(22), { dataset: 'twice' });
  const event = uuidv7();
  assert.equal(await analyser.apply(event, image.id), 'applied');
  const first = await row(image.id);
  assert.equal(await analyser.apply(event, image.id), 'duplicate');
  const second = await row(image.id);
  assert.deepEqual(second.analysed_at, first.analysed_at);
  const [count] = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM processed_events WHERE consumer = $1 AND event_id = $2',
    ['similar-test', event],
  );
  assert.equal(count?.n, 1);
});

test('a file that cannot be decoded is recorded as failed on its row, with the reason', async () => {
  const garbage = Buffer.from('this is not an image at all, only some text pretending to be one');
  const sha256 = createHash('sha256').update(garbage).digest('hex');
  const path = ctx.store.path(sha256);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, garbage);
  const id = uuidv7();
  await db.query(
    `INSERT INTO images (id, sha256, dataset, format, width, height, channels, bytes)
     VALUES ($1, $2, 'broken', 'png', 10, 10, 3, $3)`,
    [id, sha256, garbage.length],
  );
  assert.equal(await analyser.apply(uuidv7(), id), 'undecodable');
  const found = await row(id);
  assert.equal(found.analysis_status, 'failed');
  assert.match(found.analysis_error ?? '', /^The image could not be decoded: .+/);
  assert.equal(found.phash, null);
  assert.equal(found.signature, null);

  const response = await get(`/images/${id}/similar`);
  assert.equal(response.statusCode, 409);
  assert.equal(response.json().code, 'IMAGE_ANALYSIS_FAILED');
  assert.match(response.json().message, new RegExp(`^Image "${id}" could not be analysed: The image could not be`));
});

test('an event for an image deleted since is acknowledged with nothing to do', async () => {
  assert.equal(await analyser.apply(uuidv7(), '01890000-0000-7000-8000-000000000000'), 'gone');
});

test('GET /images/:id/similar returns the near-duplicates in the image’s data set, highest score first, and not the unrelated picture', async () => {
  const picture = await scene(31);
  const [small, , recompressed] = await copiesOf(picture);
  const original = await analysed(picture, { dataset: 'sim', split: 'train' });
  const copy = await analysed(small as Buffer, { dataset: 'sim', split: 'test' });
  const again = await analysed(recompressed as Buffer, { dataset: 'sim' });
  const unrelated = await analysed(await scene(32), { dataset: 'sim' });
  const elsewhere = await analysed(picture, { dataset: 'sim-other' });

  const response = await get(`/images/${original.id}/similar`);
  assert.equal(response.statusCode, 200, response.body);
  const body = response.json();
  assert.match(body.hash, /^[0-9a-f]{16}$/);
  const ids = body.items.map((item: { image: { id: string } }) => item.image.id);
  assert.deepEqual(new Set(ids), new Set([copy.id, again.id]));
  assert.ok(!ids.includes(unrelated.id));
  const scores = body.items.map((item: { score: number }) => item.score);
  assert.deepEqual(
    scores,
    [...scores].sort((a, b) => b - a),
  );
  assert.ok(scores.every((score: number) => score >= DEFAULT_THRESHOLD && score <= 1));
  assert.ok(body.items.every((item: { distance: number }) => Number.isInteger(item.distance)));

  const all = (await get(`/images/${original.id}/similar?scope=all`)).json();
  const allIds = all.items.map((item: { image: { id: string } }) => item.image.id);
  assert.ok(allIds.includes(elsewhere.id));
  assert.equal(all.items.find((item: { image: { id: string } }) => item.image.id === elsewhere.id).distance, 0);

  const other = (await get(`/images/${original.id}/similar?dataset=sim-other`)).json();
  assert.deepEqual(
    other.items.map((item: { image: { id: string } }) => item.image.id),
    [elsewhere.id],
  );

  // the same bytes are 0 bits apart; a copy may be too, in the closest of the four hashes
  const exact = (await get(`/images/${original.id}/similar?distance=0&scope=all`)).json();
  assert.ok(exact.items.some((item: { image: { id: string } }) => item.image.id === elsewhere.id));
  assert.ok(exact.items.every((item: { distance: number }) => item.distance === 0));
  assert.ok(!exact.items.some((item: { image: { id: string } }) => item.image.id === unrelated.id));
  const one = (await get(`/images/${original.id}/similar?limit=1`)).json();
  assert.equal(one.items.length, 1);
});

test('GET /images/:id/similar answers 404 for an unknown id, 409 before analysis, 400 for a bad query', async () => {
  const missing = await get('/images/01890000-0000-7000-8000-000000000001/similar');
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().code, 'IMAGE_NOT_FOUND');

  const waiting = await upload(await scene(41), { dataset: 'waiting' });
  const early = await get(`/images/${waiting.id}/similar`);
  assert.equal(early.statusCode, 409);
  assert.equal(early.json().code, 'IMAGE_NOT_ANALYSED');
  assert.match(early.json().message, /^Image ".+" has not been analysed yet; try again once the images-worker/);

  const far = await get(`/images/${waiting.id}/similar?distance=65`);
  assert.equal(far.statusCode, 400);
  assert.match(far.json().message, /distance/);
  const lax = await get(`/images/${waiting.id}/similar?threshold=0.5`);
  assert.equal(lax.statusCode, 400);
  assert.match(lax.json().message, /threshold/);
  const both = await get(`/images/${waiting.id}/similar?scope=all&dataset=waiting`);
  assert.equal(both.statusCode, 400);
  assert.equal(both.json().code, 'CONFLICTING_SCOPE');
  assert.equal(
    both.json().message,
    'Query parameters "dataset" ("waiting") and "scope" ("all") contradict each other; give one of them',
  );
});

test('GET /images/datasets/:name/leaks lists the test image that is a near copy of a train image, in keyset pages', async () => {
  const first = await scene(51);
  const second = await scene(52);
  const [firstCopy] = await copiesOf(first);
  const [, secondCopy] = await copiesOf(second);
  const trainA = await analysed(first, { dataset: 'leaky', split: 'train' });
  const trainB = await analysed(second, { dataset: 'leaky', split: 'train' });
  const testA = await analysed(firstCopy as Buffer, { dataset: 'leaky', split: 'test' });
  const valB = await analysed(secondCopy as Buffer, { dataset: 'leaky', split: 'val' });
  await analysed(await scene(53), { dataset: 'leaky', split: 'test' });
  await analysed(await scene(54), { dataset: 'leaky', split: 'train' });

  const response = await get('/images/datasets/leaky/leaks');
  assert.equal(response.statusCode, 200, response.body);
  const body = response.json();
  assert.equal(body.unanalysed, 0);
  assert.equal(body.nextCursor, null);
  const pairs = body.items.map((item: { image: { id: string }; train: { id: string }; distance: number }) => [
    item.image.id,
    item.train.id,
  ]);
  assert.deepEqual(
    pairs,
    [
      [testA.id, trainA.id],
      [valB.id, trainB.id],
    ].sort((a, b) => (a[0] as string).localeCompare(b[0] as string)),
  );

  const onlyTest = (await get('/images/datasets/leaky/leaks?split=test')).json();
  assert.deepEqual(
    onlyTest.items.map((item: { image: { id: string } }) => item.image.id),
    [testA.id],
  );

  const page1 = (await get('/images/datasets/leaky/leaks?limit=1')).json();
  assert.equal(page1.items.length, 1);
  assert.ok(page1.nextCursor);
  const page2 = (await get(`/images/datasets/leaky/leaks?limit=1&cursor=${page1.nextCursor}`)).json();
  assert.equal(page2.items.length, 1);
  assert.equal(page2.nextCursor, null);
  assert.deepEqual(
    [page1.items[0].image.id, page2.items[0].image.id],
    pairs.map((pair: string[]) => pair[0]),
  );

  const otherQuery = await get(`/images/datasets/leaky/leaks?limit=1&distance=3&cursor=${page1.nextCursor}`);
  assert.equal(otherQuery.statusCode, 400);
  assert.equal(otherQuery.json().code, 'INVALID_CURSOR');

  await upload(await scene(55), { dataset: 'leaky', split: 'test' });
  assert.equal((await get('/images/datasets/leaky/leaks')).json().unanalysed, 1);
});

test('GET /images/datasets/:name/leaks answers 404 for a data set with no images', async () => {
  const response = await get('/images/datasets/nothing-here/leaks');
  assert.equal(response.statusCode, 404);
  assert.equal(response.json().code, 'DATASET_NOT_FOUND');
});

test('on a data set of thousands, a leaks page reads its pairs in order from the pairs index', async () => {
  await db.query(
    `INSERT INTO images (sha256, dataset, split, format, width, height, channels, bytes)
     SELECT md5(i::text) || md5((-i)::text), 'bulk', CASE WHEN i % 5 = 0 THEN 'test' ELSE 'train' END, 'png', 28, 28, 1, 100
     FROM generate_series(1, 5000) AS i`,
  );
  await db.query(
    `INSERT INTO image_pairs (dataset, image_id, other_id, score, distance)
     SELECT 'bulk', a.id, b.id, 0.95, 3 FROM
       (SELECT id, row_number() OVER (ORDER BY id) AS n FROM images WHERE dataset = 'bulk') a
       JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM images WHERE dataset = 'bulk') b ON b.n = a.n + 1`,
  );
  await db.query('ANALYZE images');
  await db.query('ANALYZE image_pairs');
  const plan = (
    await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${leaksSql}`, [
      'bulk',
      ['test', 'val'],
      0.965,
      64,
      '00000000-0000-0000-0000-000000000000',
      '00000000-0000-0000-0000-000000000000',
      501,
    ])
  )
    .map((r) => r['QUERY PLAN'])
    .join('\n');
  assert.match(plan, /image_pairs_dataset_idx|image_pairs_pkey/, plan);
  assert.doesNotMatch(plan, /Sort/, plan);
});

test('two replicas analysing a picture and its copy at the same moment still pair them, both ways; a delete removes the pair', async () => {
  const picture = await scene(61);
  const [copy] = await copiesOf(picture);
  const original = await upload(picture, { dataset: 'race', split: 'train' });
  const duplicate = await upload(copy as Buffer, { dataset: 'race', split: 'test' });
  // two workers with indexes of their own, each taking one of the two at once
  const replica = () => new Analyser(analysisStore(ctx.pool), ctx.store, { consumer: 'race', maxPixels: MAX_PIXELS });
  const [a, b] = await Promise.all([
    replica().applyBatch([{ eventId: original.id, imageId: original.id }]),
    replica().applyBatch([{ eventId: duplicate.id, imageId: duplicate.id }]),
  ]);
  assert.deepEqual([a, b], [['applied'], ['applied']]);
  const pairs = await db.query<{ image_id: string; other_id: string; score: number }>(
    "SELECT image_id, other_id, score FROM image_pairs WHERE dataset = 'race' ORDER BY image_id",
  );
  assert.deepEqual(
    pairs.map((p) => [p.image_id, p.other_id]),
    [
      [original.id, duplicate.id],
      [duplicate.id, original.id],
    ].sort((x, y) => ((x[0] as string) < (y[0] as string) ? -1 : 1)),
  );
  assert.ok(pairs.every((p) => p.score >= DEFAULT_THRESHOLD));
  const leaks = (await get('/images/datasets/race/leaks')).json();
  assert.deepEqual(
    leaks.items.map((item: { image: { id: string }; train: { id: string } }) => [item.image.id, item.train.id]),
    [[duplicate.id, original.id]],
  );

  const deleted = await ctx.app.inject({ method: 'DELETE', url: `/images/${duplicate.id}` });
  assert.equal(deleted.statusCode, 204, deleted.body);
  assert.deepEqual(await db.query("SELECT * FROM image_pairs WHERE dataset = 'race'"), []);
  assert.deepEqual((await get(`/images/${original.id}/similar`)).json().items, []);
});
