import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { createService } from '../src/index.ts';

describe('numbers in paths and query strings', () => {
  let app: FastifyInstance;
  before(async () => {
    app = createService({ name: 'demo', logLevel: 'silent' });
    app.get(
      '/things/:id',
      {
        schema: {
          params: Type.Object({ id: Type.Integer({ minimum: 1, maximum: 100, description: 'must be 1 to 100' }) }),
          querystring: Type.Object({ n: Type.Optional(Type.Number({ maximum: 5 })) }),
        },
      },
      async (request) => ({ params: request.params, query: request.query }),
    );
    await app.ready();
  });
  after(() => app.close());

  test('"Infinity", "1e309" and "-1e309" are refused with 400 naming the field, not let through past the range', async () => {
    for (const id of ['Infinity', '-Infinity', '1e309', '-1e309']) {
      const res = await app.inject(`/things/${id}`);
      assert.equal(res.statusCode, 400, id);
      assert.equal(res.json().code, 'VALIDATION_ERROR');
      assert.match(res.json().message, /^Path parameter "id" must be 1 to 100 \(got "-?Infinity"\)$/, id);
    }
    const res = await app.inject('/things/5?n=1e999');
    assert.equal(res.statusCode, 400);
    assert.match(res.json().message, /^Query parameter "n" must be a finite number/);
  });

  test('finite values in range still pass, coerced to numbers', async () => {
    const res = await app.inject('/things/1e1?n=-2.5');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { params: { id: 10 }, query: { n: -2.5 } });
  });
});
