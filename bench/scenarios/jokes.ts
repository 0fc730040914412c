import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { prepareDatabase } from '../../services/jokes/src/setup.ts';
import { cpuMicros } from '../lib/cpu.ts';
import { closedLoop, type LoadResult } from '../lib/load.ts';
import { fixedRate } from '../lib/paced.ts';
import { expectAnswer } from '../lib/probe.ts';
import { seeded } from '../lib/random.ts';
import { describeRun } from '../lib/report.ts';
import { type BenchContext, check, type FigureRow, type Scenario, type ScenarioReport } from '../lib/scenario.ts';
import { median } from '../lib/stats.ts';

/** How many jokes the benchmark loads. */
export const BENCH_JOKES = 100_000;

/**
 * The word GET /jokes?q= searches for: a real noun of middling rank in the generated text, found
 * in roughly 1 joke in 300, as a specific word is in a real collection.
 */
export const SEARCH_WORD = 'lighthouse';

/**
 * Nouns as specific as SEARCH_WORD (each in 250 to 400 of the generated jokes), searched at random:
 * the cost of searches that cannot share a statement, as information next to the target.
 */
export const MIXED_WORDS = `cookie lighthouse sail rudder compass map island whale seagull penguin octopus lobster crab
  turtle parrot goat llama badger hedgehog otter beaver squirrel teapot sandwich pizza bagel donut biscuit`.split(
  /\s+/,
);

/** A word found in more than a quarter of the jokes, for a worst-case figure next to the typical one. */
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
  const random = seeded(seed);
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

/** The server processes of the connections open on the database, the service's pool. */
async function backends(databaseUrl: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query(
      'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
    );
    return rows.map((row) => row.pid as number);
  } finally {
    await client.end();
  }
}

/** The Docker sample's page, whatever the count. */
const SAMPLE_BODY = /^Hello World! I have been seen \d+ times\.\n$/;
/** One joke as JSON. */
const JOKE_BODY = /^\{"id":\d+,"joke":"/;
/** A page of search results with at least one joke. */
const PAGE_BODY = /^\{"items":\[\{"id":\d+,/;

/** Lets sockets and garbage from the previous run settle before the next one. */
const PAUSE_MS = 500;

type TargetKey = 'counter' | 'random' | 'search' | 'mixed' | 'common';

interface Target {
  key: TargetKey;
  label: string;
  url: string;
  body: RegExp;
  /** Picks each request's path instead of the url's, for a run over many different searches. */
  path?: () => string;
}

function row(label: string, runs: LoadResult[]): FigureRow {
  return {
    label,
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.latency.p50)),
    p99: median(runs.map((r) => r.latency.p99)),
    failures: runs.reduce((sum, r) => sum + r.non2xx + r.errors, 0),
  };
}

/**
 * The jokes targets, all through the gateway on 100,000 jokes: GET /jokes/random against GET / (the
 * Redis counter) in alternating pairs of short runs, so their ratio compares runs made seconds
 * apart; then GET /jokes?q= for a word as specific as real searches are, and for many such words and
 * a very common one as information. Closed-loop runs at N connections, so p99 includes queueing at
 * saturation; each run also reports the CPU per request of the service behind it.
 */
export const jokesScenario: Scenario = {
  name: 'jokes',
  summary: `GET /jokes/random against GET /, and GET /jokes?q=, through the gateway on ${BENCH_JOKES.toLocaleString('en-US')} jokes`,
  needs: ['counter', 'jokes'],

  async run(ctx: BenchContext): Promise<ScenarioReport> {
    const { options, signal, log } = ctx;
    const database = ctx.databaseUrls.jokes;
    if (!database) throw new Error('The jokes scenario needs the jokes database; run.ts creates it before the service');
    const gateway = ctx.urls.gateway;
    const mixed = await Promise.all(MIXED_WORDS.map((word) => matching(database, word)));
    const matches = {
      search: await matching(database, SEARCH_WORD),
      mixed: { min: Math.min(...mixed), max: Math.max(...mixed) },
      common: await matching(database, COMMON_WORD),
    };
    const anyWord = () => `/jokes?q=${MIXED_WORDS[Math.floor(Math.random() * MIXED_WORDS.length)]}`;
    const targets: Target[] = [
      { key: 'counter', label: 'gateway -> counter GET /', url: `${gateway}/`, body: SAMPLE_BODY },
      { key: 'random', label: 'gateway -> jokes GET /jokes/random', url: `${gateway}/jokes/random`, body: JOKE_BODY },
      {
        key: 'search',
        label: `q=${SEARCH_WORD} (${matches.search} matches)`,
        url: `${gateway}/jokes?q=${SEARCH_WORD}`,
        body: PAGE_BODY,
      },
      {
        key: 'mixed',
        label: `q=one of ${MIXED_WORDS.length} words (${matches.mixed.min}-${matches.mixed.max} matches)`,
        url: `${gateway}${anyWord()}`,
        body: PAGE_BODY,
        path: anyWord,
      },
      {
        key: 'common',
        label: `q=${COMMON_WORD} (${matches.common} matches)`,
        url: `${gateway}/jokes?q=${COMMON_WORD}`,
        body: PAGE_BODY,
      },
    ];
    for (const target of targets) await expectAnswer(target.url, target.body);

    const connections = options.connections;
    const service = (name: string) => ctx.stack.running.find((proc) => proc.spec.name === name)?.child.pid;
    const counterPid = service('counter');
    const jokesPid = service('jokes');
    // CPU per request: the counter process (Redis is shared with other work, so left out), or the
    // jokes process with the PostgreSQL backends it holds on the run's private database
    const pids = async (target: Target) => {
      if (target.key === 'counter') return counterPid ? [counterPid] : [];
      return jokesPid ? [jokesPid, ...(await backends(database))] : [];
    };
    const cpu: Record<TargetKey, number[]> = { counter: [], random: [], search: [], mixed: [], common: [] };
    const load = async (target: Target, seconds: number, tag: string, record = true) => {
      const before = new Map<number, number | undefined>();
      for (const pid of await pids(target)) before.set(pid, await cpuMicros(pid));
      const result = await closedLoop({ url: target.url, connections, seconds, path: target.path, signal });
      let used = 0;
      for (const pid of new Set([...before.keys(), ...(await pids(target))])) {
        // a pool connection that closed during the run was idle; one that opened counts in full
        const now = await cpuMicros(pid);
        if (now !== undefined) used += now - (before.get(pid) ?? 0);
      }
      const perRequest = used / Math.max(1, result.ok + result.non2xx);
      if (record) {
        runs[target.key].push(result);
        cpu[target.key].push(perRequest);
      }
      log(`${describeRun(`${tag}  ${target.label}`, result)}  CPU ${perRequest.toFixed(1)} µs/req`);
      await sleep(PAUSE_MS);
      return result;
    };

    const runs: Record<TargetKey, LoadResult[]> = { counter: [], random: [], search: [], mixed: [], common: [] };
    const fixed: LoadResult[] = [];
    const [counter, random, search, mixedWords, common] = targets as [Target, Target, Target, Target, Target];
    if (options.warmupSeconds > 0) {
      for (const target of targets) await load(target, options.warmupSeconds, 'warm-up ', false);
    }
    // the ratio from twice as many pairs, half as long: runs moments apart see the same machine,
    // so it is less at the mercy of other work starting or stopping between its two halves
    const pairs = options.rounds * 2;
    const pairSeconds = Math.max(2, Math.round(options.seconds / 2));
    for (let round = 0; round < options.rounds; round++) {
      const tag = `round ${round + 1}/${options.rounds}`;
      for (let half = 0; half < 2; half++) {
        // alternating the order keeps drift on a shared machine from always favouring one side
        const order = half === 0 ? [counter, random] : [random, counter];
        for (const target of order) await load(target, pairSeconds, `${tag} pair ${round * 2 + half + 1}/${pairs}`);
      }
      for (const target of [search, mixedWords, common]) await load(target, options.seconds, tag);
      // the same search when the machine is not saturated: latency without the queueing
      const paced = await fixedRate({
        url: search.url,
        rate: options.rate,
        seconds: options.seconds,
        connections,
        signal,
      });
      log(describeRun(`${tag}  ${search.label} @${options.rate}/s`, paced));
      fixed.push(paced);
      await sleep(PAUSE_MS);
    }

    const ratios = runs.random.map((r, i) => {
      const base = runs.counter[i];
      return base ? r.rps / base.rps : Number.NaN;
    });
    const micros = (key: TargetKey) => median(cpu[key]).toFixed(1);
    const summary = {
      randomOverCounter: median(ratios),
      searchP99: median(runs.search.map((r) => r.latency.p99)),
      mixedP99: median(runs.mixed.map((r) => r.latency.p99)),
      commonP99: median(runs.common.map((r) => r.latency.p99)),
      searchFixedP99: median(fixed.map((r) => r.latency.p99)),
      cpuMicros: Object.fromEntries(Object.keys(cpu).map((key) => [key, median(cpu[key as TargetKey])])),
    };

    const at = `${connections} connections`;
    const checks = [
      check('jokes random / GET / (gateway)', summary.randomOverCounter, '>=', 0.7, 'x', [
        ...runs.random,
        ...runs.counter,
      ]),
      check(`search p99 at ${at} (q=${SEARCH_WORD})`, summary.searchP99, '<=', 25, 'ms', runs.search),
    ];
    const rate = `${options.rate.toLocaleString('en-US')} req/s`;
    const notes = [
      `At a fixed ${rate} (not saturated) q=${SEARCH_WORD} has a p99 of ${summary.searchFixedP99.toFixed(1)} ms`,
      `Identical searches waiting at the same time share one statement; q=one of ${MIXED_WORDS.length} words shares ` +
        `little and shows what each search costs (p99 ${summary.mixedP99.toFixed(1)} ms)`,
      `q=${COMMON_WORD} is information, not a target: it matches ${matches.common} of ${BENCH_JOKES} jokes ` +
        `(p99 ${summary.commonP99.toFixed(1)} ms)`,
    ];
    const rounds =
      options.rounds > 1 ? `median of ${options.rounds} rounds, ${options.seconds} s each` : `${options.seconds} s`;
    const pairText = `median of ${pairs} alternating pairs, ${pairSeconds} s each`;
    for (const result of fixed) {
      if (result.rps < options.rate * 0.95) {
        notes.push(`A fixed-rate run reached only ${Math.round(result.rps)} of ${options.rate} req/s`);
        break;
      }
    }
    const all = [...Object.values(runs).flat(), ...fixed];
    return {
      sections: [
        {
          title: `GET /jokes/random against GET / through the gateway at ${at} (${pairText})`,
          rows: [row(counter.label, runs.counter), row(random.label, runs.random)],
          footer:
            `random / GET /: ${summary.randomOverCounter.toFixed(2)} ×; CPU per request: counter ${micros('counter')} µs ` +
            `(Redis not counted), jokes with its PostgreSQL backends ${micros('random')} µs`,
        },
        {
          title: `GET /jokes?q= through the gateway at ${at}, 20 results a page (${rounds})`,
          rows: [
            row(search.label, runs.search),
            row(mixedWords.label, runs.mixed),
            row(common.label, runs.common),
            row(`${search.label} @${rate}`, fixed),
          ],
          footer:
            `jokes with its PostgreSQL backends, CPU per request: q=${SEARCH_WORD} ${micros('search')} µs, ` +
            `one of ${MIXED_WORDS.length} words ${micros('mixed')} µs, q=${COMMON_WORD} ${micros('common')} µs`,
        },
      ],
      checks,
      notes,
      clean: all.every((r) => r.non2xx === 0 && r.errors === 0),
      data: {
        jokes: BENCH_JOKES,
        words: { search: SEARCH_WORD, mixed: MIXED_WORDS, common: COMMON_WORD },
        matches,
        closedLoop: runs,
        fixedRate: { search: fixed },
        perPair: { randomOverCounter: ratios },
        cpuMicrosPerRequest: cpu,
        summary,
      },
    };
  },
};
