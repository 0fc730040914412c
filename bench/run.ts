// npm run bench: starts its own stack on free ports, loads it, prints the figures against the issue's
// targets and writes bench/results/<date>.json. Usage: npm run bench -- --help
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { databaseName } from '@berth/service-kit';
import { readOptions } from './lib/options.ts';
import { dropDatabase, privateDatabaseUrl } from './lib/postgres.ts';
import { removeKeys, runKeyPrefix } from './lib/redis.ts';
import { formatChecks, formatSection } from './lib/report.ts';
import { commit, cpuBusy, machine, writeResults } from './lib/results.ts';
import type { BenchContext, ScenarioReport } from './lib/scenario.ts';
import { type StackUrls, startGateway, startService, type UpstreamName } from './lib/services.ts';
import { describeTail, Stack } from './lib/stack.ts';
import { type ImagesBenchState, prepareImagesBench } from './scenarios/images.ts';
import { scenarios } from './scenarios/index.ts';
import { BENCH_JOKES, loadJokes } from './scenarios/jokes.ts';

const log = (line: string) => console.log(line);
const options = readOptions(
  process.argv.slice(2),
  scenarios.map((s) => s.name),
);
const selected = options.only.length > 0 ? scenarios.filter((s) => options.only.includes(s.name)) : scenarios;
const cannon = createRequire(import.meta.url)('autocannon/package.json') as { version: string };

const startedAt = new Date();
const keyPrefix = runKeyPrefix();
/** The token this run's writes carry through the gateway. */
const apiToken = randomBytes(32).toString('hex');
const stack = new Stack();
/** The images service's private database and IMAGES_DIR, when a scenario needs it. */
let imagesState: ImagesBenchState | undefined;
/** Private databases of this run, by the service that uses them; all dropped at the end. */
const databaseUrls: Partial<Record<UpstreamName, string>> = {};
const controller = new AbortController();

function interrupt(signal: NodeJS.Signals) {
  if (controller.signal.aborted) process.exit(130); // a second Ctrl-C: the exit hook kills the children
  console.error(`\n${signal}: stopping the benchmark and everything it started`);
  controller.abort(new Error(`Interrupted by ${signal}`));
}
process.on('SIGINT', interrupt);
process.on('SIGTERM', interrupt);

/** The env each service needs beyond PORT, HOST and LOG_LEVEL. */
function serviceEnv(name: UpstreamName): Record<string, string> {
  switch (name) {
    case 'counter':
      return { REDIS_URL: options.redisUrl, REDIS_KEY_PREFIX: keyPrefix };
    case 'jokes':
      return { DATABASE_URL: databaseUrls.jokes ?? '' };
    case 'images':
      return imagesState?.env ?? {};
    default:
      throw new Error(`No benchmark settings for the ${name} service yet; add them to serviceEnv in bench/run.ts`);
  }
}

/**
 * The gateway runs as deployed, rate limit included, but with a limit no run reaches, counted under
 * this run's Redis prefix so its counts are removed with the rest.
 */
function gatewayEnv(): Record<string, string> {
  return {
    REDIS_URL: options.redisUrl,
    API_TOKENS: apiToken,
    RATE_LIMIT_MAX: '1000000000',
    RATE_LIMIT_KEY_PREFIX: `${keyPrefix}ratelimit:`,
  };
}

/** Creates the private database a service works on, with its schema and data, before it starts. */
async function prepareData(name: UpstreamName): Promise<void> {
  if (name === 'images') {
    imagesState = await prepareImagesBench(options.databaseUrl, options.natsUrl);
    log(`images database ${databaseName(imagesState.env.DATABASE_URL)}, IMAGES_DIR ${imagesState.env.IMAGES_DIR}`);
    return;
  }
  if (name !== 'jokes') return;
  // recorded first, so a load that fails half-way is still dropped
  databaseUrls.jokes = privateDatabaseUrl(options.databaseUrl, 'bench_jokes');
  const started = performance.now();
  await loadJokes(databaseUrls.jokes, BENCH_JOKES);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(
    `jokes database ${databaseName(databaseUrls.jokes)}: ${BENCH_JOKES.toLocaleString('en-US')} jokes in ${seconds} s`,
  );
}

async function startStack(): Promise<StackUrls> {
  const urls: StackUrls = {};
  const needs = [...new Set(selected.flatMap((s) => s.needs))];
  for (const name of needs) {
    await prepareData(name);
    controller.signal.throwIfAborted();
    urls[name] = await startService(stack, name, serviceEnv(name));
    log(`${name} ready at ${urls[name]}`);
    controller.signal.throwIfAborted();
  }
  urls.gateway = await startGateway(stack, urls, gatewayEnv());
  log(`gateway ready at ${urls.gateway}`);
  return urls;
}

async function main(): Promise<number> {
  const host = machine();
  const measured = commit();
  log(`berth benchmark, ${startedAt.toISOString()}, commit ${measured}`);
  log(`${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, Node ${host.node}, load ${host.loadAverage.join(' ')}`);
  log(
    `${options.connections} connections, ${options.seconds} s per run, ${options.warmupSeconds} s warm-up, ` +
      `${options.rounds} round(s), fixed rate ${options.rate} req/s, Redis keys under "${keyPrefix}"\n`,
  );
  const busy = await cpuBusy();
  log(
    `CPU busy before the run: ${Math.round(busy * 100)} %${busy > 0.25 ? ', other work is running: expect noise' : ''}\n`,
  );
  const urls = await startStack();
  const ctx: BenchContext = {
    options,
    stack,
    urls,
    databaseUrls,
    keyPrefix,
    apiToken,
    serviceEnv,
    signal: controller.signal,
    log,
  };

  const reports: Record<string, ScenarioReport> = {};
  for (const scenario of selected) {
    log(`\n== ${scenario.name}: ${scenario.summary}`);
    reports[scenario.name] = await scenario.run(ctx);
  }

  const crashed = stack.crashed();
  for (const proc of stack.running) {
    if (proc.lines > 0 && !proc.exited)
      log(`\n${proc.spec.name} logged ${proc.lines} lines at warn or above:\n${describeTail(proc)}`);
  }
  for (const proc of crashed) {
    console.error(`\n${proc.spec.name} exited during the run (code ${proc.exited?.code}):\n${describeTail(proc)}`);
  }

  for (const [name, report] of Object.entries(reports)) {
    log(`\n===== ${name} =====`);
    for (const section of report.sections) log(`\n${formatSection(section)}`);
    log(`\n${formatChecks(report.checks)}`);
    for (const note of report.notes) log(`note: ${note}`);
    if (!report.clean) log('Some runs had failed requests: their figures are not valid');
  }

  const clean = crashed.length === 0 && Object.values(reports).every((r) => r.clean);
  const file = await writeResults(
    startedAt,
    {
      date: startedAt.toISOString(),
      commit: measured,
      machine: host,
      config: {
        loadTool: `autocannon ${cannon.version} (closed loop); open-loop node:http pacer (fixed rate)`,
        connections: options.connections,
        seconds: options.seconds,
        warmupSeconds: options.warmupSeconds,
        rounds: options.rounds,
        fixedRate: options.rate,
        scenarios: selected.map((s) => s.name),
      },
      clean,
      cpuBusyBeforeRun: busy,
      scenarios: Object.fromEntries(
        Object.entries(reports).map(([name, r]) => [
          name,
          { checks: r.checks, notes: r.notes, clean: r.clean, ...r.data },
        ]),
      ),
    },
    options.only,
  );
  log(`\nResults written to ${file}`);
  return clean ? 0 : 1;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  if (controller.signal.aborted) exitCode = 130;
  else console.error(`\nThe benchmark failed: ${(err as Error).message}`);
} finally {
  await stack.stop();
  await removeKeys(options.redisUrl, keyPrefix).catch((err: Error) => {
    console.error(`Could not remove the Redis keys under "${keyPrefix}": ${err.message}`);
  });
  await imagesState?.cleanup().catch((err: Error) => {
    console.error(`Could not remove the images benchmark's database and folder: ${err.message}`);
  });
  for (const url of Object.values(databaseUrls)) {
    await dropDatabase(url).catch((err: Error) => {
      console.error(`Could not drop the database ${databaseName(url)}: ${err.message}`);
    });
  }
}
process.exit(exitCode);
