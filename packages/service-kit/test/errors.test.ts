import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { createService, dependencyUnavailable, describeValidation, httpError } from '../src/index.ts';

const Thing = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z]+$', description: 'must be lowercase letters a to z' }),
    size: Type.Optional(Type.Integer()),
    box: Type.Optional(
      Type.Object({ depth: Type.Integer({ minimum: 1, description: 'must be a whole number of at least 1' }) }),
    ),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'must be from 1 to 100' })),
});

function buildDemo(): FastifyInstance {
  const app = createService({ name: 'demo', logLevel: 'silent' });
  app.post('/things', { schema: { body: Thing } }, async (request) => request.body);
  app.get('/things', { schema: { querystring: ListQuery } }, async (request) => request.query);
  app.get('/boom', async () => {
    throw new Error('connect ECONNREFUSED 10.0.0.7:5432 password=hunter2');
  });
  app.get('/busy', async () => {
    throw dependencyUnavailable('PostgreSQL');
  });
  app.get('/taken', async () => {
    throw httpError(409, 'NAME_TAKEN', 'Name "cat" is taken; pick another');
  });
  return app;
}

describe('shared error handler', () => {
  let app: FastifyInstance;
  before(async () => {
    app = buildDemo();
    await app.ready();
  });
  after(() => app.close());

  const post = (payload: unknown) => app.inject({ method: 'POST', url: '/things', payload: payload as object });

  test('a missing required body field is named', async () => {
    const res = await post({ size: 2 });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(res.json(), {
      statusCode: 400,
      code: 'VALIDATION_ERROR',
      error: 'Bad Request',
      message: 'Body field "name" is required',
    });
  });

  test('an unknown body field is named and refused, not dropped', async () => {
    const res = await post({ name: 'cat', colour: 'black' });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().message, 'Body field "colour" is not allowed; remove it');
  });

  test('a body field of the wrong type names the field and the type', async () => {
    const res = await post({ name: 'cat', size: 1.5 });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().message, 'Body field "size" must be an integer');
  });

  test('a body that is not an object says so', async () => {
    const res = await post([1, 2]);
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().message, 'Body must be a JSON object');
  });

  test('a pattern failure uses the schema description and quotes the value', async () => {
    const res = await post({ name: 'Cat!' });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().message, 'Body field "name" must be lowercase letters a to z (got "Cat!")');
  });

  test('a nested field is named by its path', async () => {
    const res = await post({ name: 'cat', box: { depth: 0 } });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().message, 'Body field "box.depth" must be a whole number of at least 1 (got 0)');
  });

  test('a bad query parameter is named as a query parameter', async () => {
    const wrongType = await app.inject('/things?limit=lots');
    assert.equal(wrongType.statusCode, 400);
    assert.equal(wrongType.json().message, 'Query parameter "limit" must be from 1 to 100 (got "lots")');
    const outOfRange = await app.inject('/things?limit=1000');
    assert.equal(outOfRange.json().message, 'Query parameter "limit" must be from 1 to 100 (got 1000)');
  });

  test('a valid request passes through with query strings coerced', async () => {
    const res = await app.inject('/things?limit=5');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { limit: 5 });
  });

  test('an unexpected throw answers 500 INTERNAL_ERROR without leaking its message', async () => {
    const res = await app.inject({ url: '/boom', headers: { 'x-request-id': 'trace-500' } });
    assert.equal(res.statusCode, 500);
    const body = res.json();
    assert.equal(body.statusCode, 500);
    assert.equal(body.code, 'INTERNAL_ERROR');
    assert.equal(body.error, 'Internal Server Error');
    assert.doesNotMatch(res.body, /hunter2|ECONNREFUSED|10\.0\.0\.7/);
    assert.match(body.message, /trace-500/, 'the message gives the request id to quote');
  });

  test('a deliberate 503 keeps its code and message and suggests a retry', async () => {
    const res = await app.inject('/busy');
    assert.equal(res.statusCode, 503);
    assert.deepEqual(res.json(), {
      statusCode: 503,
      code: 'DEPENDENCY_UNAVAILABLE',
      error: 'Service Unavailable',
      message: 'PostgreSQL is unavailable right now; retry in a few seconds',
    });
    assert.equal(res.headers['retry-after'], '1');
  });

  test('a deliberate 4xx keeps its code and message', async () => {
    const res = await app.inject('/taken');
    assert.equal(res.statusCode, 409);
    assert.deepEqual(res.json(), {
      statusCode: 409,
      code: 'NAME_TAKEN',
      error: 'Conflict',
      message: 'Name "cat" is taken; pick another',
    });
  });

  test('an unknown route answers 404 in the shared shape without the query string', async () => {
    const res = await app.inject('/nowhere/at/all?token=secret');
    assert.equal(res.statusCode, 404);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(res.json(), {
      statusCode: 404,
      code: 'ROUTE_NOT_FOUND',
      error: 'Not Found',
      message: 'Route GET /nowhere/at/all does not exist',
    });
  });
});

describe('describeValidation', () => {
  const issue = (keyword: string, fields: Record<string, unknown>) => ({
    keyword,
    instancePath: '',
    params: {},
    ...fields,
  });

  test('names a required field inside a nested object by its path', () => {
    const message = describeValidation(
      'body',
      issue('required', { instancePath: '/box', params: { missingProperty: 'depth' } }),
    );
    assert.equal(message, 'Body field "box.depth" is required');
  });

  test('names path parameters and headers by where they come from', () => {
    const param = issue('pattern', {
      instancePath: '/name',
      data: 'A B',
      parentSchema: { description: 'must be lowercase' },
    });
    assert.equal(describeValidation('params', param), 'Path parameter "name" must be lowercase (got "A B")');
    const header = issue('type', { instancePath: '/x-count', params: { type: 'integer' } });
    assert.equal(describeValidation('headers', header), 'Header "x-count" must be an integer');
  });

  test('falls back to the Ajv message when the schema has no description', () => {
    const message = describeValidation(
      'querystring',
      issue('maxLength', { instancePath: '/q', data: 'abcdef', message: 'must NOT have more than 3 characters' }),
    );
    assert.equal(message, 'Query parameter "q" must NOT have more than 3 characters (got "abcdef")');
  });

  test('shortens a long offending value', () => {
    const message = describeValidation(
      'body',
      issue('pattern', { instancePath: '/name', data: 'x'.repeat(500), parentSchema: { description: 'is too long' } }),
    );
    assert.equal(message, `Body field "name" is too long (got "${'x'.repeat(77)}...")`);
  });
});

describe('shared error handler against hostile bodies, over HTTP', () => {
  let app: FastifyInstance;
  let base: string;
  before(async () => {
    app = buildDemo();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address() as { port: number };
    base = `http://127.0.0.1:${address.port}`;
  });
  after(() => app.close());

  const post = (body: string) =>
    fetch(`${base}/things`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  test('deeply nested JSON gets a 400 naming the field, not a 500', async () => {
    const depth = 200_000;
    const res = await post(`{"name":"cat","box":{"depth":${'['.repeat(depth)}${']'.repeat(depth)}}}`);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: string; message: string };
    assert.equal(body.code, 'VALIDATION_ERROR');
    assert.match(body.message, /^Body field "box\.depth" must be a whole number of at least 1 \(got \[\[\[/);
    assert.ok(body.message.length < 200, `message of ${body.message.length} characters`);
  });

  test('a 1 MB value is quoted in a few characters, not echoed whole', async () => {
    // just under the 1 MiB body limit
    const big = Array.from({ length: 150_000 }, (_, i) => i);
    const res = await post(JSON.stringify({ name: 'cat', box: { depth: big } }));
    assert.equal(res.status, 400);
    const text = await res.text();
    assert.ok(text.length < 400, `answer of ${text.length} bytes`);
    assert.match(JSON.parse(text).message, /\(got \[0,1,2,.*\.\.\.\]?\)$/);
  });
});
