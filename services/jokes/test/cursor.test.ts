import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeCursor, encodeCursor, queryKey } from '../src/cursor.ts';
import { allowedFlags } from '../src/flags.ts';

describe('cursors', () => {
  const key = queryKey({ q: 'ship', category: undefined, lang: undefined, allowed: [] });

  test('round-trip a list position and a search position, rank text unchanged', () => {
    assert.deepEqual(decodeCursor(encodeCursor(key, { id: 42 }), key, false), { id: 42 });
    for (const rank of ['0.0607927', '1e-05', '0', '0.1']) {
      assert.deepEqual(decodeCursor(encodeCursor(key, { id: 7, rank }), key, true), { id: 7, rank });
    }
  });

  test('are tied to the filters they were cut with', () => {
    const other = queryKey({ q: 'ship', category: 'puns', lang: undefined, allowed: [] });
    assert.notEqual(other, key);
    assert.throws(() => decodeCursor(encodeCursor(key, { id: 1 }), other, false), /belongs to a different query/);
  });

  test('refuse anything else with a 400 naming the cursor', () => {
    const forge = (parts: unknown[]) => Buffer.from(JSON.stringify(parts)).toString('base64url');
    for (const cursor of [
      'abc',
      forge([2, key, 1]),
      forge([1, key, -1]),
      forge([1, key, 1.5]),
      forge([1, key, 2 ** 31]),
      forge([1, key, '1']),
      forge([1, key, 1, '0.5']),
      forge([1, key, 1, 2, 3]),
    ]) {
      assert.throws(
        () => decodeCursor(cursor, key, false),
        (err: Error & { statusCode?: number }) => err.statusCode === 400 && /"cursor"/.test(err.message),
        cursor,
      );
    }
    assert.throws(() => decodeCursor(forge([1, key, 1, "0.5' OR 1=1"]), key, true), /"cursor"/);
    assert.throws(() => decodeCursor(forge([1, key, 1]), key, true), /"cursor"/);
  });
});

describe('allowedFlags', () => {
  test('allows no flag by default, every flag with safe=false, minus exclude', () => {
    assert.deepEqual(allowedFlags({}), []);
    assert.deepEqual(allowedFlags({ safe: true }), []);
    assert.deepEqual(allowedFlags({ safe: false }), ['nsfw', 'religious', 'political', 'racist', 'sexist', 'explicit']);
    assert.deepEqual(allowedFlags({ safe: false, exclude: 'nsfw,explicit' }), [
      'religious',
      'political',
      'racist',
      'sexist',
    ]);
    assert.deepEqual(allowedFlags({ include: 'political,nsfw' }), ['nsfw', 'political']);
    assert.deepEqual(allowedFlags({ include: 'political', exclude: 'political' }), []);
  });
});
