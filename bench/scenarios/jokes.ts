import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { withDatabase } from '@berth/service-kit';
import pg from 'pg';
import { prepareDatabase } from '../../services/jokes/src/setup.ts';
import { closedLoop, type LoadResult } from '../lib/load.ts';
import { fixedRate } from '../lib/paced.ts';

/** How many jokes the benchmark loads. */
export const BENCH_JOKES = 100_000;

/**
 * The word GET /jokes?q= searches for: a real noun of middling rank in the generated text, found
 * in roughly 1 joke in 300, as a specific word is in a real collection.
 */
export const SEARCH_WORD = 'lighthouse';

/** A word found in about a third of the jokes, for a worst-case figure next to the typical one. */
export const COMMON_WORD = 'server';

const NOUNS = `server container database packet harbour ship captain crane cargo index table query cursor
  lock queue pipeline cluster node replica schema migration gateway router socket thread process kernel
  compiler function variable loop branch commit merge release ticket sprint manager intern developer
  tester operator auditor firewall password token certificate cache bucket volume disk backup snapshot
  log metric alert pager dashboard incident outage rollback deploy config secret vault tunnel proxy
  balancer switch cable modem antenna satellite robot printer keyboard mouse monitor laptop phone
  tablet coffee teapot sandwich pizza bagel donut biscuit cookie lighthouse anchor sail rudder
  compass map island whale seagull penguin octopus lobster crab turtle parrot goat llama badger
  hedgehog otter beaver raccoon squirrel weasel wizard dragon knight castle tower bridge river
  mountain valley forest desert glacier volcano comet planet galaxy rocket astronaut alien
  spreadsheet invoice meeting calendar deadline budget lawyer accountant dentist plumber
  electrician librarian barista chef waiter farmer tractor bicycle scooter train airport`.split(/\s+/);

const VERBS = `deployed rebooted compiled refactored merged indexed cached dropped vacuumed replicated
  forwarded routed encrypted decrypted scaled throttled retried pinged patched migrated archived
  renamed deleted restored shipped docked anchored loaded unloaded painted polished audited
  tested debugged documented ignored forgot remembered borrowed stole returned ordered cancelled
  promoted demoted hired interviewed counted measured weighed cooked baked juggled sang whistled
  painted launched landed orbited pinged rebased squashed cherry-picked benchmarked profiled`.split(/\s+/);

const ADJECTIVES = `slow fast lazy eager grumpy cheerful sleepy nervous brave clumsy polite rude shiny
  rusty ancient modern tiny enormous legacy stateless stateful idempotent eventual consistent
  distributed serverless immutable mutable verbose silent noisy tired caffeinated optimistic
  pessimistic paranoid curious suspicious famous anonymous invisible purple orange green golden
  wooden plastic digital analog quantum recursive asynchronous synchronous blocking flaky
  deterministic random elegant awkward sarcastic honest secret public private`.split(/\s+/);

const ENDINGS = [
  'and nobody noticed until Monday',
  'which explains the pager at three in the morning',
  'so the ops team ordered more coffee',
  'and the retrospective lasted four hours',
  'but the dashboard stayed green the whole time',
  'and that is why we pin our versions',
  'which is still cheaper than the meeting',
  'and the healthcheck said everything was fine',
];

/** A small fast seeded generator, so every run loads the same text. */
// Made-up words for the long tail of the vocabulary: real text has a few common words and
// tens of thousands of rare ones, and search cost follows how many jokes hold the word
function madeUpWords(count: number, random: () => number, taken: Set<string>): string[] {
  const onsets = 'b br c ch d dr f fl g gr h j k kl l m n p pr qu r s sh sk st t tr v w z'.split(' ');
  const vowels = 'a e i o u ai ea oo'.split(' ');
  const codas = ['', 'n', 'r', 'l', 'st', 'x', 'nd', 'm', 'k'];
  const pick = (list: string[]) => list[Math.floor(random() * list.length)] as string;
  const words: string[] = [];
  while (words.length < count) {
    let word = '';
    for (let i = 2 + Math.floor(random() * 2); i > 0; i--) word += pick(onsets) + pick(vowels) + pick(codas);
    if (!taken.has(word)) {
      taken.add(word);
      words.push(word);
    }
  }
  return words;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks words with a Zipf-like skew: a few are everywhere, most are rare, as in real text. */
function zipfPicker(words: string[], random: () => number, exponent = 0.9): () => string {
  const weights = words.map((_, rank) => 1 / (rank + 1) ** exponent);
  const cumulative: number[] = [];
  let total = 0;
  for (const weight of weights) {
    total += weight;
    cumulative.push(total);
  }
  return () => {
    const target = random() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < target) lo = mid + 1;
      else hi = mid;
    }
    return words[lo] as string;
  };
}

interface GeneratedJoke {
  joke: string;
  category: string;
  flags: string;
}

const CATEGORIES = ['programming', 'containers', 'databases', 'networking', 'puns', 'devops', 'security', 'misc'];

/** Jokes of 12 to 30 words from a vocabulary of a few hundred words, about 1 in 20 flagged. */
function jokeGenerator(seed: number): () => GeneratedJoke {
  const random = mulberry32(seed);
  const vocabulary = [...NOUNS, ...madeUpWords(20_000, random, new Set(NOUNS))];
  const noun = zipfPicker(vocabulary, random, 1);
  const verb = zipfPicker(VERBS, random);
  const adjective = zipfPicker(ADJECTIVES, random);
  const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)] as T;
  const templates = [
    () =>
      `Why did the ${adjective()} ${noun()} get ${verb()} by the ${noun()}? Because the ${noun()} was ${adjective()}, ${pick(ENDINGS)}.`,
    () =>
      `A ${adjective()} ${noun()} and a ${adjective()} ${noun()} walk into a ${noun()}. The ${noun()} ${verb()} them both, ${pick(ENDINGS)}.`,
    () =>
      `My ${noun()} is so ${adjective()} that it ${verb()} the ${noun()} twice before the ${noun()} ${verb()} anything.`,
    () =>
      `How many ${noun()}s does it take to fix a ${adjective()} ${noun()}? Three: one ${verb()} it, one ${verb()} the ${noun()}, and one writes the postmortem.`,
    () =>
      `The ${noun()} ${verb()} the ${adjective()} ${noun()} on a Friday, ${pick(ENDINGS)}; the ${noun()} still blames the ${noun()}.`,
    () =>
      `Never trust a ${adjective()} ${noun()}: it ${verb()} your ${noun()} and calls it a ${adjective()} ${noun()}.`,
  ];
  return () => {
    const r = random();
    const flags = r < 0.02 ? 'nsfw' : r < 0.035 ? 'political' : r < 0.05 ? 'religious' : '';
    return { joke: pick(templates)(), category: pick(CATEGORIES), flags };
  };
}

const BATCH = 5000;

/**
 * Migrates the given (private) database and fills it with `count` generated jokes in batches of
 * multi-row INSERTs, then VACUUM ANALYZE so the planner and index-only paths see the real table.
 * Text that happens to repeat is skipped by the fingerprint index and topped up with more.
 */
export async function loadJokes(databaseUrl: string, count = BENCH_JOKES): Promise<void> {
  await prepareDatabase(databaseUrl, { seed: false });
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const next = jokeGenerator(20_240_611);
    let stored = Number((await client.query('SELECT count(*) AS n FROM jokes')).rows[0].n);
    while (stored < count) {
      const size = Math.min(BATCH, count - stored);
      const rows = Array.from({ length: size }, next);
      const result = await client.query(
        `INSERT INTO jokes (joke, category, flags)
         SELECT joke, category, string_to_array(flags, ',')
         FROM unnest($1::text[], $2::text[], $3::text[]) AS s(joke, category, flags)
         ON CONFLICT (fingerprint) DO NOTHING`,
        [rows.map((r) => r.joke), rows.map((r) => r.category), rows.map((r) => r.flags)],
      );
      stored += result.rowCount ?? 0;
    }
    await client.query('VACUUM ANALYZE jokes');
  } finally {
    await client.end();
  }
}

/** How many jokes hold the word, as the API's search would match it. */
async function matching(databaseUrl: string, word: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM jokes WHERE document @@ websearch_to_tsquery('english', $1)",
      [word],
    );
    return rows[0].n;
  } finally {
    await client.end();
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function waitReady(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`The jokes service at ${url} did not become ready within ${timeoutMs} ms`);
}

function report(label: string, result: LoadResult): LoadResult {
  const failures = result.non2xx + result.errors;
  const line = `${label.padEnd(34)} ${result.rps.toFixed(0).padStart(6)} req/s   p50 ${result.latency.p50.toFixed(1)} ms   p99 ${result.latency.p99.toFixed(1)} ms`;
  process.stdout.write(`${line}${failures ? `   (${failures} failed)` : ''}\n`);
  return result;
}

/** autocannon at N connections after a short warm-up: the server's capacity and its latency when saturated. */
async function saturate(label: string, url: string, connections: number, seconds: number) {
  await closedLoop({ url, connections, seconds: Math.min(2, seconds) });
  return report(label, await closedLoop({ url, connections, seconds }));
}

/**
 * Standalone: a private database with 100,000 jokes, the jokes service on a free port, and
 * autocannon at 50 connections on GET /jokes/random and GET /jokes?q=<word>, plus the search at
 * a steady BENCH_RATE (open loop), which is its latency when the machine is not saturated.
 */
async function main() {
  const server = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const rate = Number(process.env.BENCH_RATE ?? 500);
  const databaseUrl = withDatabase(server, `bench_jokes_${process.pid}`);
  let service: ReturnType<typeof spawn> | undefined;
  try {
    const started = performance.now();
    await loadJokes(databaseUrl);
    process.stdout.write(`loaded ${BENCH_JOKES} jokes in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    const port = await freePort();
    service = spawn(process.execPath, [fileURLToPath(new URL('../../services/jokes/src/main.ts', import.meta.url))], {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const base = `http://127.0.0.1:${port}`;
    await waitReady(base);
    process.stdout.write(`${connections} connections, ${seconds} s per run (after a 2 s warm-up)\n`);
    await saturate('GET /jokes/random', `${base}/jokes/random`, connections, seconds);
    for (const word of [SEARCH_WORD, COMMON_WORD]) {
      const share = await matching(databaseUrl, word);
      process.stdout.write(`"${word}" is in ${share} of ${BENCH_JOKES} jokes\n`);
      const url = `${base}/jokes?q=${word}`;
      const closed = await saturate(`GET /jokes?q=${word}`, url, connections, seconds);
      if (word !== SEARCH_WORD) continue;
      const paced = report(`  same at ${rate} req/s`, await fixedRate({ url, rate, seconds, connections }));
      const verdict = (r: LoadResult) => (r.latency.p99 <= 25 ? 'met' : 'missed');
      process.stdout.write(`search p99 <= 25 ms: ${verdict(closed)} saturated, ${verdict(paced)} at ${rate} req/s\n`);
    }
  } finally {
    if (service && service.exitCode === null) {
      service.kill('SIGTERM');
      await once(service, 'exit');
    }
    const client = new pg.Client({ connectionString: server });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(`bench_jokes_${process.pid}`)} WITH (FORCE)`);
    await client.end();
  }
}

if (import.meta.main) await main();
