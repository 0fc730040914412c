import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uuidv7 } from '../src/ids.ts';

test('uuidv7 ids are version 7, variant 10, and strictly increasing within a process', () => {
  const ids = Array.from({ length: 20_000 }, () => uuidv7());
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  for (let i = 1; i < ids.length; i++)
    assert.ok((ids[i] as string) > (ids[i - 1] as string), `${ids[i - 1]} < ${ids[i]}`);
});

test('uuidv7 carries the creation time in its first 48 bits', () => {
  const before = Date.now();
  const id = uuidv7();
  const ms = Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
  assert.ok(ms >= before && ms <= Date.now() + 5);
});

test('more than 4,096 ids in one millisecond still increase, borrowing the next millisecond', () => {
  const fixed = Date.now() + 10_000;
  const ids = Array.from({ length: 5000 }, () => uuidv7(fixed));
  for (let i = 1; i < ids.length; i++) assert.ok((ids[i] as string) > (ids[i - 1] as string));
});
