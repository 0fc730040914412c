import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { body, testApp } from './helpers/app.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

interface Item {
  id: number;
  joke: string;
  category: string;
  lang: string;
  flags: string[];
  createdAt: string;
  updatedAt: string;
}

let db: TestDatabase;
let app: ReturnType<typeof testApp>;

before(async () => {
  db = await createTestDatabase({ seed: false });
  app = testApp(db.url);
});

after(async () => {
  await app?.close();
  await db?.drop();
});

const post = (payload: unknown) => app.inject({ method: 'POST', url: '/jokes', payload: payload as object });

describe('POST /jokes', () => {
  test('answers 201 with the stored joke and its Location', async () => {
    const response = await post({ joke: '  Why did the berth stay calm? It had a good mooring routine.  ' });
    assert.equal(response.statusCode, 201);
    const joke = body<Item>(response);
    assert.equal(response.headers.location, `/jokes/${joke.id}`);
    assert.equal(joke.joke, 'Why did the berth stay calm? It had a good mooring routine.', 'outer blanks trimmed');
    assert.deepEqual([joke.category, joke.lang, joke.flags], ['misc', 'en', []]);
    assert.ok(!Number.isNaN(Date.parse(joke.createdAt)));
    const read = await app.inject({ method: 'GET', url: response.headers.location as string });
    assert.deepEqual(body(read), joke);
  });

  test('stores category, lang and flags', async () => {
    const response = await post({
      joke: 'A joke that is flagged on purpose, for the test.',
      category: 'testing',
      lang: 'en',
      flags: ['political', 'nsfw'],
    });
    assert.equal(response.statusCode, 201);
    assert.deepEqual(body<Item>(response).flags.sort(), ['nsfw', 'political']);
  });

  test('keeps line breaks, quotes and SQL inside the joke as text', async () => {
    const text = 'Q: Who\'s Robert\'); DROP TABLE jokes;--?\nA: A student, and "the" reason we bind parameters.';
    const response = await post({ joke: text });
    assert.equal(response.statusCode, 201);
    assert.equal(body<Item>(response).joke, text);
  });

  test('the same joke after normalizing case, spaces and punctuation is a 409 naming the existing id', async () => {
    const first = body<Item>(await post({ joke: "Don't panic: the pager is just lonely." }));
    for (const again of [
      "DON'T PANIC -- the pager is just... lonely!",
      'dont   panic the pager is just lonely',
      'Don’t panic; the pager is just lonely?',
    ]) {
      const response = await post({ joke: again });
      assert.equal(response.statusCode, 409, again);
      const answer = body(response);
      assert.equal(answer.existingId, first.id);
      assert.equal(answer.code, 'DUPLICATE_JOKE');
      assert.match(answer.message as string, new RegExp(`joke ${first.id}`));
    }
    assert.equal((await post({ joke: "Don't panic: the pager is just lonely tonight." })).statusCode, 201);
  });

  test('letters of any script count: different words are not duplicates', async () => {
    assert.equal((await post({ joke: 'Привет, мир контейнеров' })).statusCode, 201);
    assert.equal((await post({ joke: 'Пока, мир контейнеров' })).statusCode, 201);
    assert.equal((await post({ joke: 'привет мир контейнеров!' })).statusCode, 409);
  });

  test('of identical jokes posted at the same moment exactly one is stored', async () => {
    const text = 'Twelve replicas raced to post this joke and the unique index picked a winner.';
    const answers = await Promise.all(Array.from({ length: 12 }, () => post({ joke: text })));
    const codes = answers.map((answer) => answer.statusCode).sort();
    assert.deepEqual(codes, [201, ...Array(11).fill(409)]);
    const won = answers.find((answer) => answer.statusCode === 201);
    assert.ok(won);
    const winner = body<Item>(won);
    for (const answer of answers.filter((a) => a.statusCode === 409)) assert.equal(body(answer).existingId, winner.id);
  });
});

describe('PATCH /jokes/:id', () => {
  test('changes the given fields and bumps updatedAt', async () => {
    const created = body<Item>(await post({ joke: 'A joke about to be edited.' }));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const response = await app.inject({
      method: 'PATCH',
      url: `/jokes/${created.id}`,
      payload: { category: 'edited', flags: ['religious'] },
    });
    assert.equal(response.statusCode, 200);
    const edited = body<Item>(response);
    assert.deepEqual(
      [edited.joke, edited.category, edited.flags],
      ['A joke about to be edited.', 'edited', ['religious']],
    );
    assert.ok(Date.parse(edited.updatedAt) > Date.parse(created.updatedAt));
  });

  test('new text that duplicates another joke is a 409 naming it', async () => {
    const a = body<Item>(await post({ joke: 'Original text number one.' }));
    const b = body<Item>(await post({ joke: 'Original text number two.' }));
    const response = await app.inject({
      method: 'PATCH',
      url: `/jokes/${b.id}`,
      payload: { joke: 'original TEXT number one' },
    });
    assert.equal(response.statusCode, 409);
    assert.equal(body(response).existingId, a.id);
    const own = await app.inject({
      method: 'PATCH',
      url: `/jokes/${a.id}`,
      payload: { joke: 'Original text, number one!' },
    });
    assert.equal(own.statusCode, 200, 'rewording a joke into itself is fine');
  });

  test('returns 404 for an unknown id and 400 for an empty body', async () => {
    const missing = await app.inject({ method: 'PATCH', url: '/jokes/987654', payload: { category: 'x' } });
    assert.equal(missing.statusCode, 404);
    const empty = await app.inject({ method: 'PATCH', url: '/jokes/1', payload: {} });
    assert.equal(empty.statusCode, 400);
    assert.equal(body(empty).message, 'Body must name at least one of joke, category, lang, flags');
  });
});

describe('DELETE /jokes/:id', () => {
  test('answers 204, then 404', async () => {
    const created = body<Item>(await post({ joke: 'A joke that will not last long.' }));
    const first = await app.inject({ method: 'DELETE', url: `/jokes/${created.id}` });
    assert.equal(first.statusCode, 204);
    assert.equal(first.body, '');
    assert.equal((await app.inject({ method: 'GET', url: `/jokes/${created.id}` })).statusCode, 404);
    assert.equal((await app.inject({ method: 'DELETE', url: `/jokes/${created.id}` })).statusCode, 404);
    assert.equal((await post({ joke: 'A joke that will not last long!' })).statusCode, 201, 'its text is free again');
  });
});
