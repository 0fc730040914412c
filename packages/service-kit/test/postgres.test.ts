import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  createPool,
  HttpError,
  isPostgresUnavailable,
  postgresReadiness,
  sqlState,
  withDatabase,
  withPostgres,
} from '../src/index.ts';

const SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function caught(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a rejection');
}

// A TCP server that accepts connections and never says a word: a hung or black-holed database
let silent: Server;
let silentPort = 0;
const sockets = new Set<Socket>();
// A port nothing listens on
let closedPort = 0;

before(async () => {
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentPort = (silent.address() as { port: number }).port;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

describe('isPostgresUnavailable', () => {
  test('is true for a refused connection', async () => {
    const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${closedPort}/x` });
    const err = await caught(() => client.connect());
    assert.equal(isPostgresUnavailable(err), true, err.message);
  });

  test('is true for a statement cancelled by statement_timeout', async () => {
    const pool = createPool({ connectionString: SERVER_URL, applicationName: 'kit-test', statementTimeoutMs: 100 });
    const err = await caught(() => pool.query('SELECT pg_sleep(2)'));
    await pool.end();
    assert.equal(sqlState(err), '57014');
    assert.equal(isPostgresUnavailable(err), true);
  });

  test('is true for a connection the server terminated', async () => {
    const client = new pg.Client({ connectionString: SERVER_URL });
    client.on('error', () => {});
    await client.connect();
    const err = await caught(() => client.query('SELECT pg_terminate_backend(pg_backend_pid())'));
    await client.end().catch(() => {});
    assert.equal(isPostgresUnavailable(err), true, `${sqlState(err)} ${err.message}`);
  });

  test('is true for a database that does not exist (yet)', async () => {
    const client = new pg.Client({
      connectionString: withDatabase(SERVER_URL, `missing_${randomBytes(4).toString('hex')}`),
    });
    const err = await caught(() => client.connect());
    assert.equal(sqlState(err), '3D000');
    assert.equal(isPostgresUnavailable(err), true);
  });

  test('is false for a bad query and for errors that are not errors', async () => {
    const pool = createPool({ connectionString: SERVER_URL, applicationName: 'kit-test' });
    const syntax = await caught(() => pool.query('SELEC 1'));
    const unique = await caught(() => pool.query('SELECT 1/0'));
    await pool.end();
    assert.equal(isPostgresUnavailable(syntax), false);
    assert.equal(isPostgresUnavailable(unique), false);
    assert.equal(isPostgresUnavailable('ECONNREFUSED'), false);
    assert.equal(isPostgresUnavailable(null), false);
  });
});

describe('createPool and withPostgres', () => {
  test('a server that accepts but never answers becomes a 503 within the connect timeout', async () => {
    const pool = createPool({
      connectionString: `postgres://postgres@127.0.0.1:${silentPort}/x`,
      applicationName: 'kit-test',
      connectTimeoutMs: 300,
    });
    const started = performance.now();
    const err = await caught(() => withPostgres(() => pool.query('SELECT 1')));
    const ms = performance.now() - started;
    await pool.end();
    assert.ok(err instanceof HttpError);
    assert.equal(err.statusCode, 503);
    assert.equal(err.message, 'PostgreSQL is unavailable right now; retry in a few seconds');
    assert.ok(err.cause, 'the original error is kept for the log');
    assert.ok(ms < 1000, `gave up after ${Math.round(ms)} ms`);
  });

  test('a refused connection becomes a 503 at once', async () => {
    const pool = createPool({
      connectionString: `postgres://postgres@127.0.0.1:${closedPort}/x`,
      applicationName: 'kit-test',
    });
    const started = performance.now();
    const err = await caught(() => withPostgres(() => pool.query('SELECT 1')));
    await pool.end();
    assert.equal((err as HttpError).statusCode, 503);
    assert.ok(performance.now() - started < 500);
  });

  test('other errors pass through unchanged', async () => {
    const pool = createPool({ connectionString: SERVER_URL, applicationName: 'kit-test' });
    const err = await caught(() => withPostgres(() => pool.query('SELECT * FROM no_such_table_here')));
    await pool.end();
    assert.equal(sqlState(err), '42P01');
    assert.ok(!(err instanceof HttpError));
  });

  test('connections killed while idle are replaced on the next query', async () => {
    const name = `kit-test-${randomBytes(4).toString('hex')}`;
    const pool = createPool({ connectionString: SERVER_URL, applicationName: name, max: 3 });
    await Promise.all([pool.query('SELECT pg_sleep(0.05)'), pool.query('SELECT pg_sleep(0.05)')]);
    const admin = new pg.Client({ connectionString: SERVER_URL });
    await admin.connect();
    const { rowCount } = await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [name],
    );
    await admin.end();
    assert.ok((rowCount ?? 0) >= 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { rows } = await pool.query('SELECT 1 AS one');
    await pool.end();
    assert.deepEqual(rows, [{ one: 1 }]);
  });
});

describe('checked-out connections', () => {
  test('a connection the server cuts while it is checked out does not crash the process', async () => {
    const pool = createPool({ connectionString: SERVER_URL, applicationName: 'kit-test-held' });
    const admin = new pg.Client({ connectionString: SERVER_URL });
    await admin.connect();
    const uncaught: Error[] = [];
    const onUncaught = (err: Error) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      // held between queries, as a relay holds one while it waits for its broker
      const held = await pool.connect();
      const { rows } = await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const err = await caught(() => held.query('SELECT 1'));
      held.release(err);
      assert.deepEqual(uncaught, []);
      const again = await pool.query('SELECT 1 AS one');
      assert.deepEqual(again.rows, [{ one: 1 }]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.end();
      await pool.end();
    }
  });
});

describe('postgresReadiness', () => {
  test('resolves when the server answers, rejects when it is gone or the schema is missing', async () => {
    const up = createPool({ connectionString: SERVER_URL, applicationName: 'kit-test' });
    const down = createPool({
      connectionString: `postgres://postgres@127.0.0.1:${closedPort}/x`,
      applicationName: 'kit-test',
    });
    await postgresReadiness(up)();
    await assert.rejects(postgresReadiness(up, 'SELECT 1 FROM no_such_table_here LIMIT 0')(), /does not exist/);
    await assert.rejects(postgresReadiness(down)());
    await Promise.all([up.end(), down.end()]);
  });
});
