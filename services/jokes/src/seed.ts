import { readFile } from 'node:fs/promises';
import type pg from 'pg';

/** The starter jokes shipped with berth, so a fresh stack answers GET /jokes/random out of the box. */
export const STARTER_SEED = new URL('../seeds/starter-jokes.json', import.meta.url);

interface SeedJoke {
  joke: string;
  category?: string;
  lang?: string;
  flags?: string[];
}

/**
 * Loads a seed set once per database. seed_history records that it ran, in the same transaction,
 * so starter jokes deleted later stay deleted, and two migrate runs at once load it exactly once
 * (the second waits on the first's seed_history row and then finds it there). Returns how many
 * jokes were added.
 */
export async function seed(client: pg.ClientBase, name: string, file: URL = STARTER_SEED): Promise<number> {
  const jokes = JSON.parse(await readFile(file, 'utf8')) as SeedJoke[];
  await client.query('BEGIN');
  try {
    const claimed = await client.query(
      'INSERT INTO seed_history (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING name',
      [name],
    );
    let added = 0;
    if (claimed.rowCount === 1) {
      const result = await client.query(
        `INSERT INTO jokes (joke, category, lang, flags)
         SELECT joke, coalesce(category, 'misc'), coalesce(lang, 'en'), coalesce(flags, '{}')
         FROM jsonb_to_recordset($1::jsonb) AS s(joke text, category text, lang text, flags text[])
         ON CONFLICT (fingerprint) DO NOTHING`,
        [JSON.stringify(jokes)],
      );
      added = result.rowCount ?? 0;
    }
    await client.query('COMMIT');
    return added;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
