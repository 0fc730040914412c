import { createHash } from 'node:crypto';
import { sqlState, withPostgres } from '@berth/service-kit';
import type pg from 'pg';
import { Batcher } from './batch.ts';
import type { Position } from './cursor.ts';
import { FLAGS, type Flag } from './flags.ts';
import type { CreateInput, JokeOut, PatchInput } from './schemas.ts';
import { and, Params } from './sql.ts';

const COLUMNS = 'id, joke, category, lang, flags, created_at, updated_at';

interface JokeRow {
  id: number;
  joke: string;
  category: string;
  lang: string;
  flags: string[];
  created_at: Date;
  updated_at: Date;
}

function toJoke(row: JokeRow): JokeOut {
  return {
    id: row.id,
    joke: row.joke,
    category: row.category,
    lang: row.lang,
    flags: row.flags,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

// A joke as the API serves it (the Joke schema: same keys, order and formats), built by PostgreSQL
// as compact JSON text. Pages are sent without turning every row into objects and dates and back.
// Used as `CROSS JOIN LATERAL (SELECT ${JOKE_FIELDS}) out` over a row `j` of jokes.
const JOKE_FIELDS = `j.id, j.joke, j.category, j.lang, j.flags,
  to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "createdAt",
  to_char(j.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "updatedAt"`;
const JOKE_JSON = 'row_to_json(out)::text';

const names = new Map<string, string>();

/** A stable name per statement text: node-postgres prepares a name once per connection and reuses it. */
function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    name = `jokes_${createHash('sha256').update(text).digest('base64url').slice(0, 22)}`;
    names.set(text, name);
  }
  return name;
}

/** Filters shared by lists, search, random picks and category counts. */
export interface Filters {
  category?: string;
  lang?: string;
  /** Flags the reader allows; a joke is shown when all of its flags are allowed. */
  allowed: Flag[];
}

// Written out literally for the safe case so the planner can use the partial index on unflagged rows
function visibility(params: Params, allowed: Flag[]): string | undefined {
  if (allowed.length === 0) return "flags = '{}'";
  if (allowed.length === FLAGS.length) return undefined;
  return `flags <@ ${params.add(allowed)}::text[]`;
}

function filterSql(params: Params, filters: Filters): string[] {
  return [
    visibility(params, filters.allowed),
    filters.category === undefined ? undefined : `category = ${params.add(filters.category)}`,
    filters.lang === undefined ? undefined : `lang = ${params.add(filters.lang)}`,
  ].filter((condition): condition is string => condition !== undefined);
}

// Without a language the words are matched both stemmed as English and as typed, so jokes stored
// under another language's rules are still found by their exact words
function tsquery(params: Params, q: string, lang: string | undefined): string {
  const text = params.add(q);
  if (lang !== undefined) return `websearch_to_tsquery(joke_search_config(${params.add(lang)}), ${text})`;
  return `(websearch_to_tsquery('english', ${text}) || websearch_to_tsquery('simple', ${text}))`;
}

// One pick: the first row at or after the point, or the first row of all when the point lies
// past the last key; the second branch only runs when the first finds nothing
function probe(where: string, point: string): string {
  return `(SELECT ${COLUMNS} FROM jokes WHERE ${where} AND random_key >= ${point} ORDER BY random_key LIMIT 1)
    UNION ALL
    (SELECT ${COLUMNS} FROM jokes WHERE ${where} ORDER BY random_key LIMIT 1)
    LIMIT 1`;
}

// Filters that give the same SQL and values share a key
function filtersKey(filters: Filters): string {
  return JSON.stringify([filters.allowed, filters.category ?? null, filters.lang ?? null]);
}

/** A page of jokes, each as JSON text, plus where the next one starts (undefined on the last page). */
export interface Page {
  json: string[];
  next?: Position;
}

interface SearchArgs {
  q: string;
  filters: Filters;
  limit: number;
  after?: Position;
}

/** Why a write was refused: the same joke (after normalizing) is already stored under existingId. */
export class DuplicateJoke extends Error {
  readonly existingId: number;
  constructor(existingId: number) {
    super(`The same joke is already stored as joke ${existingId}`);
    this.existingId = existingId;
  }
}

/** Raw SQL for the jokes table; every value is a bind parameter, every outage a 503. */
export function jokeRepository(pool: pg.Pool) {
  // Named (prepared) statements: each connection parses and plans a statement once, which on these
  // index lookups costs more than running them
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    withPostgres(() => pool.query<R>({ name: statementName(text), text, values }));

  async function findDuplicate(joke: string): Promise<number | undefined> {
    const { rows } = await query<{ id: number }>('SELECT id FROM jokes WHERE fingerprint = joke_fingerprint($1)', [
      joke,
    ]);
    return rows[0]?.id;
  }

  /**
   * Independent single picks for requests that arrived together: one probe per request, numbered
   * so each gets its own row back. Two requests may get the same joke, as two separate picks could.
   * A point with no row means no joke matches the filters.
   */
  async function pickBatch(filters: Filters, count: number): Promise<(JokeRow | undefined)[]> {
    const params = new Params();
    const where = and(filterSql(params, filters));
    const points = params.add(Array.from({ length: count }, () => Math.random()));
    const { rows } = await query<JokeRow & { n: number }>(
      `SELECT p.n::int AS n, j.* FROM unnest(${points}::float8[]) WITH ORDINALITY AS p(point, n)
       CROSS JOIN LATERAL (${probe(where, 'p.point')}) j`,
      params.values,
    );
    const picked: (JokeRow | undefined)[] = new Array(count);
    for (const row of rows) picked[row.n - 1] = row;
    return picked;
  }
  const picks = new Batcher(pickBatch);

  /** Full-text search, best match first; ties broken by id so (rank, id) is a stable keyset. */
  async function searchPage({ q, filters, limit, after }: SearchArgs): Promise<Page> {
    const params = new Params();
    const search = tsquery(params, q, filters.lang);
    const conditions = ['document @@ query', ...filterSql(params, filters)];
    let keyset = '';
    if (after) {
      const rank = params.add(after.rank);
      keyset = `WHERE rank < ${rank}::real OR (rank = ${rank}::real AND id > ${params.add(after.id)})`;
    }
    // MATERIALIZED: the query text is parsed once, not again for every matching row (which a
    // generic plan of a prepared statement would otherwise do). ts_rank rather than ts_rank_cd:
    // about four times cheaper per match, and word frequency is what ranks short jokes anyway.
    // Only (id, rank) pairs go through the sort; the page's rows are read afterwards by id.
    const { rows } = await query<{ id: number; rank_text: string; json: string }>(
      `WITH search AS MATERIALIZED (SELECT ${search} AS query)
       SELECT page.id, page.rank::text AS rank_text, ${JOKE_JSON} AS json FROM (
         SELECT id, rank FROM (
           SELECT id, ts_rank(document, query) AS rank FROM jokes, search WHERE ${and(conditions)}
         ) ranked ${keyset}
         ORDER BY rank DESC, id LIMIT ${params.add(limit + 1)}
       ) page
       JOIN jokes j ON j.id = page.id
       CROSS JOIN LATERAL (SELECT ${JOKE_FIELDS}) out
       ORDER BY page.rank DESC, page.id`,
      params.values,
    );
    const items = rows.slice(0, limit);
    const last = items.at(-1);
    return {
      json: items.map((row) => row.json),
      next: rows.length > limit && last ? { id: last.id, rank: last.rank_text } : undefined,
    };
  }
  // one run of a search at a time: identical searches that arrive meanwhile all wait for the next
  const searches = new Batcher<SearchArgs, Page>(
    async (args, count) => {
      const page = await searchPage(args);
      return Array.from({ length: count }, () => page);
    },
    { concurrency: 1 },
  );

  return {
    /** Jokes in id order, after the cursor's id. */
    async list(filters: Filters, limit: number, after?: Position): Promise<Page> {
      const params = new Params();
      const conditions = filterSql(params, filters);
      if (after) conditions.push(`id > ${params.add(after.id)}`);
      const { rows } = await query<{ id: number; json: string }>(
        `SELECT j.id, ${JOKE_JSON} AS json FROM (
           SELECT ${COLUMNS} FROM jokes WHERE ${and(conditions)} ORDER BY id LIMIT ${params.add(limit + 1)}
         ) j
         CROSS JOIN LATERAL (SELECT ${JOKE_FIELDS}) out
         ORDER BY j.id`,
        params.values,
      );
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return { json: items.map((row) => row.json), next: rows.length > limit && last ? { id: last.id } : undefined };
    },

    /**
     * Full-text search, best match first; ties broken by id so (rank, id) is a stable keyset.
     * Identical searches waiting at the same time share one statement and its page.
     */
    async search(q: string, filters: Filters, limit: number, after?: Position): Promise<Page> {
      const key = JSON.stringify([q, filters.allowed, filters.category, filters.lang, limit, after?.id, after?.rank]);
      const page = await searches.add(key, { q, filters, limit, after });
      if (!page) throw new Error('A shared search run gave no page');
      return page;
    },

    /** One joke by id, or undefined. */
    async get(id: number): Promise<JokeOut | undefined> {
      const { rows } = await query<JokeRow>(`SELECT ${COLUMNS} FROM jokes WHERE id = $1`, [id]);
      return rows[0] ? toJoke(rows[0]) : undefined;
    },

    /**
     * Up to `count` different random jokes. Each pick is an index probe: the first row whose
     * random_key is at or after a random point (wrapping to the start), so no query scans or
     * sorts the table. Single picks with the same filters that arrive together share one
     * statement (see pickBatch). For batches, probes on a small table can land on the same row;
     * the rest is then filled from the rows that follow in random_key order.
     */
    async random(filters: Filters, count: number): Promise<JokeOut[]> {
      if (count === 1) {
        const row = await picks.add(filtersKey(filters), filters);
        return row ? [toJoke(row)] : [];
      }
      // a second round of probes, since on a small table several land on the same row
      const probes = Array.from({ length: count * 2 }, () => Math.random());
      const params = new Params();
      const where = and(filterSql(params, filters));
      const points = params.add(probes);
      const { rows } = await query<JokeRow>(
        `SELECT j.* FROM unnest(${points}::float8[]) AS p(point)
         CROSS JOIN LATERAL (${probe(where, 'p.point')}) j`,
        params.values,
      );
      const picked = new Map<number, JokeRow>();
      for (const row of rows) if (picked.size < count) picked.set(row.id, row);
      if (picked.size < count && rows.length > 0) {
        const more = new Params();
        const moreWhere = and([...filterSql(more, filters), `id <> ALL(${more.add([...picked.keys()])}::int[])`]);
        const start = more.add(probes[0]);
        const limit = more.add(count - picked.size);
        const { rows: extra } = await query<JokeRow>(
          `(SELECT ${COLUMNS} FROM jokes WHERE ${moreWhere} AND random_key >= ${start} ORDER BY random_key LIMIT ${limit})
           UNION ALL
           (SELECT ${COLUMNS} FROM jokes WHERE ${moreWhere} AND random_key < ${start} ORDER BY random_key LIMIT ${limit})
           LIMIT ${limit}`,
          more.values,
        );
        for (const row of extra) picked.set(row.id, row);
      }
      return [...picked.values()].map(toJoke);
    },

    /** Categories with how many jokes each holds under the filters. */
    async categories(filters: Filters): Promise<{ name: string; count: number }[]> {
      const params = new Params();
      const { rows } = await query<{ name: string; count: number }>(
        `SELECT category AS name, count(*)::int AS count FROM jokes WHERE ${and(filterSql(params, filters))}
         GROUP BY category ORDER BY category`,
        params.values,
      );
      return rows;
    },

    /**
     * Stores a new joke. The unique index on the fingerprint decides races: of two identical
     * jokes posted at once exactly one is stored, the other gets DuplicateJoke.
     */
    async create(input: CreateInput): Promise<JokeOut> {
      for (let attempt = 0; attempt < 3; attempt++) {
        const { rows } = await query<JokeRow>(
          `INSERT INTO jokes (joke, category, lang, flags)
           VALUES ($1, coalesce($2, 'misc'), coalesce($3, 'en'), coalesce($4::text[], '{}'))
           ON CONFLICT (fingerprint) DO NOTHING
           RETURNING ${COLUMNS}`,
          [input.joke, input.category ?? null, input.lang ?? null, input.flags ?? null],
        );
        if (rows[0]) return toJoke(rows[0]);
        // the conflicting row may be deleted before we look it up: then simply try again
        const existing = await findDuplicate(input.joke);
        if (existing !== undefined) throw new DuplicateJoke(existing);
      }
      throw new Error('Joke insert kept conflicting with a row that then disappeared');
    },

    /** Changes the given fields; undefined when there is no such joke. */
    async update(id: number, input: PatchInput): Promise<JokeOut | undefined> {
      const params = new Params();
      const sets: string[] = [];
      if (input.joke !== undefined) sets.push(`joke = ${params.add(input.joke)}`);
      if (input.category !== undefined) sets.push(`category = ${params.add(input.category)}`);
      if (input.lang !== undefined) sets.push(`lang = ${params.add(input.lang)}`);
      if (input.flags !== undefined) sets.push(`flags = ${params.add(input.flags)}::text[]`);
      try {
        const { rows } = await query<JokeRow>(
          `UPDATE jokes SET ${sets.join(', ')} WHERE id = ${params.add(id)} RETURNING ${COLUMNS}`,
          params.values,
        );
        return rows[0] ? toJoke(rows[0]) : undefined;
      } catch (err) {
        if (sqlState(err) === '23505' && input.joke !== undefined) {
          const existing = await findDuplicate(input.joke);
          if (existing !== undefined) throw new DuplicateJoke(existing);
        }
        throw err;
      }
    },

    /** Removes a joke; true when it existed. */
    async remove(id: number): Promise<boolean> {
      const { rowCount } = await query('DELETE FROM jokes WHERE id = $1', [id]);
      return rowCount === 1;
    },
  };
}

/** The jokes store as routes see it. */
export type JokeRepository = ReturnType<typeof jokeRepository>;
