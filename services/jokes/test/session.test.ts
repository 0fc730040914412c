import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPool } from '@berth/service-kit';
import type pg from 'pg';
import { tuneSessions } from '../src/session.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

let db: TestDatabase;
let pool: pg.Pool;

before(async () => {
  db = await createTestDatabase({ seed: false });
  pool = createPool({ connectionString: db.url, applicationName: 'session-test', max: 2 });
  tuneSessions(pool);
});

after(async () => {
  await pool?.end();
  await db?.drop();
});

test('every connection plans prepared statements generically and never compiles with JIT', async () => {
  // two at once, so that a second connection is opened too
  const settings =
    "SELECT current_setting('plan_cache_mode') AS plans, current_setting('jit') AS jit FROM pg_sleep(0.05)";
  const answers = await Promise.all([pool.query(settings), pool.query(settings)]);
  assert.equal(pool.totalCount, 2);
  for (const { rows } of answers) assert.deepEqual(rows[0], { plans: 'force_generic_plan', jit: 'off' });
});
