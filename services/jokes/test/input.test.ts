import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { body, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

let db: TestDatabase;
let app: ReturnType<typeof testApp>;

before(async () => {
  db = await createTestDatabase();
  app = testApp(db.url);
});

after(async () => {
  await app?.close();
  await db?.drop();
});

async function rowCount(): Promise<number> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const { rows } = await client.query('SELECT count(*)::int AS n FROM jokes');
  await client.end();
  return rows[0].n;
}

// [what, request, the field the message must name]
const cases: [
  string,
  { method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: string; payload?: unknown; raw?: Buffer },
  string,
][] = [
  [
    'joke of the wrong type',
    { method: 'POST', url: '/jokes', payload: { joke: 42 } },
    'Body field "joke" must be 1 to 2000 characters of text (no control characters, not only spaces) (got 42)',
  ],
  ['missing joke', { method: 'POST', url: '/jokes', payload: { category: 'puns' } }, 'Body field "joke" is required'],
  [
    'unknown field',
    { method: 'POST', url: '/jokes', payload: { joke: 'fine', punchline: 'x' } },
    '"punchline" is not allowed',
  ],
  ['empty joke', { method: 'POST', url: '/jokes', payload: { joke: '' } }, 'Body field "joke" must be 1 to 2000'],
  [
    'joke of only spaces',
    { method: 'POST', url: '/jokes', payload: { joke: ' \n\t ' } },
    'Body field "joke" must be 1 to 2000',
  ],
  [
    'joke over 2,000 characters',
    { method: 'POST', url: '/jokes', payload: { joke: 'ha'.repeat(1001) } },
    'Body field "joke" must be 1 to 2000',
  ],
  [
    'joke with a NUL character',
    { method: 'POST', url: '/jokes', payload: { joke: 'null\u0000byte' } },
    'Body field "joke"',
  ],
  [
    'joke with a lone surrogate',
    { method: 'POST', url: '/jokes', raw: Buffer.from('{"joke":"half \\ud800 a pair"}') },
    'Body field "joke"',
  ],
  [
    'body with invalid UTF-8 bytes',
    {
      method: 'POST',
      url: '/jokes',
      raw: Buffer.from([0x7b, 0x22, 0x6a, 0x6f, 0x6b, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    },
    'Body is not valid UTF-8',
  ],
  ['body that is not JSON', { method: 'POST', url: '/jokes', raw: Buffer.from('{"joke": nope') }, 'Body'],
  ['body that is an array', { method: 'POST', url: '/jokes', payload: [{ joke: 'x' }] }, 'Body must be a JSON object'],
  [
    'category with SQL in it',
    { method: 'POST', url: '/jokes', payload: { joke: 'ok', category: "x'; DROP TABLE jokes;--" } },
    'Body field "category"',
  ],
  [
    'unknown flag',
    { method: 'POST', url: '/jokes', payload: { joke: 'ok', flags: ['spicy'] } },
    'Body field "flags.0" must be one of',
  ],
  [
    'flags as a string',
    { method: 'POST', url: '/jokes', payload: { joke: 'ok', flags: 'nsfw' } },
    'Body field "flags" must be a list of distinct flags from nsfw, religious, political, racist, sexist, explicit (got "nsfw")',
  ],
  [
    'lang of three letters',
    { method: 'POST', url: '/jokes', payload: { joke: 'ok', lang: 'eng' } },
    'Body field "lang"',
  ],
  [
    'PATCH with an unknown field',
    { method: 'PATCH', url: '/jokes/1', payload: { id: 7 } },
    'Body field "id" is not allowed',
  ],
  [
    'id that is not a number',
    { method: 'GET', url: '/jokes/abc' },
    'Path parameter "id" must be a whole number from 1 to 2147483647 (got "abc")',
  ],
  ['id with SQL in it', { method: 'GET', url: '/jokes/1%20OR%201=1' }, 'Path parameter "id"'],
  [
    'id of zero',
    { method: 'DELETE', url: '/jokes/0' },
    'Path parameter "id" must be a whole number from 1 to 2147483647',
  ],
  ['id beyond 32 bits', { method: 'GET', url: '/jokes/2147483648' }, 'Path parameter "id" must be a whole number'],
  ['negative id', { method: 'PATCH', url: '/jokes/-1', payload: { category: 'x' } }, 'Path parameter "id"'],
  [
    'id with bad percent-encoding',
    { method: 'GET', url: '/jokes/%FF' },
    'Path parameter "id" is not valid percent-encoded UTF-8',
  ],
  [
    'limit over 100',
    { method: 'GET', url: '/jokes?limit=101' },
    'Query parameter "limit" must be a whole number from 1 to 100',
  ],
  ['limit that is not a number', { method: 'GET', url: '/jokes?limit=ten' }, 'Query parameter "limit"'],
  ['unknown query parameter', { method: 'GET', url: '/jokes?offset=20' }, 'Query parameter "offset" is not allowed'],
  [
    'category with SQL in the query',
    { method: 'GET', url: "/jokes?category=a'%20OR%20'1'='1" },
    'Query parameter "category"',
  ],
  [
    'q of broken UTF-8',
    { method: 'GET', url: '/jokes?q=%E2%82' },
    'Query parameter "q" is not valid percent-encoded UTF-8',
  ],
  ['q with a control character', { method: 'GET', url: '/jokes?q=a%00b' }, 'Query parameter "q"'],
  ['q over 200 characters', { method: 'GET', url: `/jokes?q=${'a'.repeat(201)}` }, 'Query parameter "q"'],
  ['cursor that was never handed out', { method: 'GET', url: '/jokes?cursor=bm9wZQ' }, 'Query parameter "cursor"'],
  [
    'safe that is not a boolean',
    { method: 'GET', url: '/jokes/random?safe=maybe' },
    'Query parameter "safe" must be true or false (got "maybe")',
  ],
  [
    'exclude with an unknown flag',
    { method: 'GET', url: '/jokes/random?exclude=nsfw,spicy' },
    'Query parameter "exclude" must be a comma-separated list',
  ],
  ['count of zero', { method: 'GET', url: '/jokes/random?count=0' }, 'Query parameter "count"'],
  [
    'categories with an unknown parameter',
    { method: 'GET', url: '/jokes/categories?sort=desc' },
    'Query parameter "sort" is not allowed',
  ],
];

describe('bad input', () => {
  for (const [what, request, names] of cases) {
    test(`${what} is a 400 that names the field`, async () => {
      const before = await rowCount();
      const response = await app.inject({
        method: request.method,
        url: request.url,
        ...(request.raw
          ? { payload: request.raw, headers: { 'content-type': 'application/json' } }
          : request.payload === undefined
            ? {}
            : { payload: request.payload as object }),
      });
      assert.equal(response.statusCode, 400, response.body);
      const answer = body(response);
      assert.deepEqual(Object.keys(answer).sort(), ['code', 'error', 'message', 'statusCode']);
      assert.ok((answer.message as string).includes(names), `${answer.message} should contain ${names}`);
      assert.equal(await rowCount(), before, 'nothing was written');
    });
  }
});

describe('a path segment longer than Fastify allows', () => {
  test('is a 414 in the shared shape for every method, not a 500', async () => {
    const before = await rowCount();
    for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
      const response = await app.inject({ method, url: `/jokes/${'9'.repeat(150)}`, payload: { joke: 'x' } });
      assert.equal(response.statusCode, 414, `${method}: ${response.body}`);
      assert.deepEqual(body(response), {
        statusCode: 414,
        code: 'PATH_TOO_LONG',
        error: 'URI Too Long',
        message: 'A path segment is longer than 100 characters; a joke id is a whole number from 1 to 2147483647',
      });
    }
    assert.equal(await rowCount(), before, 'nothing was written');
  });
});
