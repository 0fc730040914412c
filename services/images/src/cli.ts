// npm run images -- import <path...> --dataset <name> [--split train|test|val] [--format idx|cifar10|imagefolder]
// npm run images -- export <dataset> [--out file.tar]
// npm run images -- status <job-id> | retry <job-id>
// Talks to the gateway at BERTH_URL (default http://127.0.0.1:5000); BERTH_TOKEN, when set, is sent as a bearer token.
import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { packFolder } from './cli-pack.ts';

const BASE = (process.env.BERTH_URL ?? 'http://127.0.0.1:5000').replace(/\/$/, '');
const USAGE = `Usage:
  npm run images -- import <path...> --dataset <name> [--split train|test|val] [--format idx|cifar10|imagefolder]
  npm run images -- export <dataset> [--out <file.tar>|-]
  npm run images -- status <job-id>
  npm run images -- retry <job-id>
A folder given to import is sent as its data set files (IDX, CIFAR-10) or, holding images in
<label>/ or <split>/<label>/ folders, packed into an ImageFolder tar first.
The gateway is BERTH_URL (default http://127.0.0.1:5000).`;

/** A failure to report in one line, without a stack trace. */
class CliError extends Error {}

function headers(): Record<string, string> {
  return process.env.BERTH_TOKEN ? { authorization: `Bearer ${process.env.BERTH_TOKEN}` } : {};
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(`${BASE}${path}`, { ...init, headers: { ...headers(), ...(init.headers ?? {}) } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new CliError(
      `Cannot reach berth at ${BASE} (${cause?.code ?? cause?.message ?? (err as Error).message}); is it running? Set BERTH_URL to point elsewhere`,
    );
  }
  if (!response.ok) {
    const text = await response.text();
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not JSON: show it as it came
    }
    throw new CliError(`${response.status}: ${message}`);
  }
  return response;
}

interface Job {
  id: string;
  status: string;
  total: number | null;
  processed: number;
  imported: number;
  duplicates: number;
  failed: number;
  errors: { record: string; message: string }[];
  message: string | null;
}

const DATASET_FILE = /(-ubyte(\.gz)?|\.bin|batches\.meta\.txt)$/i;

/** The files to send for the given paths; folders of images are packed into a tar in `scratch`. */
async function collect(paths: string[], scratch: () => Promise<string>): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => {
      throw new CliError(`Path "${path}" does not exist`);
    });
    if (info.isFile()) {
      files.push(path);
      continue;
    }
    const names = (await readdir(path)).sort();
    const datasetFiles = names.filter((name) => DATASET_FILE.test(name));
    if (datasetFiles.length > 0) {
      files.push(...datasetFiles.map((name) => join(path, name)));
      continue;
    }
    const archive = join(await scratch(), `${basename(path) || 'images'}.tar`);
    process.stderr.write(`Packing folder "${path}" as an ImageFolder tar...\n`);
    const count = await packFolder(path, archive);
    process.stderr.write(`Packed ${count} files\n`);
    files.push(archive);
  }
  return files;
}

async function follow(id: string): Promise<Job> {
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: ' {bar} {percentage}% | {value}/{total} images | {speed}/s | duplicates {duplicates} | failed {failed}',
      hideCursor: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  let job = (await (await call(`/images/imports/${id}`)).json()) as Job;
  bar.start(job.total ?? 0, 0, { speed: 0, duplicates: 0, failed: 0 });
  while (job.status === 'queued' || job.status === 'running') {
    await sleep(250);
    job = (await (await call(`/images/imports/${id}`)).json()) as Job;
    if (job.total !== null) bar.setTotal(job.total);
    else bar.setTotal(Math.max(job.processed, 1));
    const seconds = (performance.now() - started) / 1000;
    bar.update(job.processed, {
      speed: Math.round(job.processed / Math.max(seconds, 0.001)),
      duplicates: job.duplicates,
      failed: job.failed,
    });
  }
  bar.stop();
  return job;
}

function summary(job: Job, seconds: number): number {
  const line = `Import ${job.id} ${job.status}: ${job.imported} imported, ${job.duplicates} duplicates, ${job.failed} failed of ${job.processed} in ${seconds.toFixed(1)} s`;
  process.stdout.write(`${line}\n`);
  for (const error of job.errors) process.stdout.write(`  ${error.record}: ${error.message}\n`);
  if (job.message) process.stdout.write(`${job.message}\n`);
  if (job.status === 'interrupted') process.stdout.write(`Finish it with: npm run images -- retry ${job.id}\n`);
  return job.status === 'completed' ? 0 : 1;
}

async function importCommand(paths: string[], values: Record<string, string | undefined>): Promise<number> {
  if (paths.length === 0) throw new CliError(`Name the files or folder to import\n${USAGE}`);
  if (!values.dataset) throw new CliError('Say which data set to import into with --dataset <name>');
  let scratchDir: string | undefined;
  const scratch = async () => {
    scratchDir ??= await mkdtemp(join(tmpdir(), 'berth-images-'));
    return scratchDir;
  };
  try {
    const files = await collect(paths, scratch);
    const form = new FormData();
    form.set('dataset', values.dataset);
    if (values.split) form.set('split', values.split);
    if (values.format) form.set('format', values.format);
    let bytes = 0;
    for (const file of files) {
      // a file-backed Blob: the upload streams from disk instead of being read into memory
      const blob = await openAsBlob(file);
      bytes += blob.size;
      form.append('files', blob, basename(file));
    }
    process.stderr.write(`Uploading ${files.length} file(s), ${(bytes / 1024 / 1024).toFixed(1)} MiB...\n`);
    const started = performance.now();
    const job = (await (await call('/images/imports', { method: 'POST', body: form })).json()) as Job;
    process.stderr.write(`Import job ${job.id} accepted\n`);
    const done = await follow(job.id);
    return summary(done, (performance.now() - started) / 1000);
  } finally {
    if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
  }
}

async function exportCommand(name: string | undefined, out: string | undefined): Promise<number> {
  if (!name) throw new CliError(`Name the data set to export\n${USAGE}`);
  const datasets = (await (await call('/images/datasets')).json()) as {
    items: { name: string; count: number; bytes: number }[];
  };
  const info = datasets.items.find((d) => d.name === name);
  const response = await call(`/images/datasets/${encodeURIComponent(name)}/export`);
  if (!response.body) throw new CliError('The export came back empty');
  const target = out ?? `${name}.tar`;
  const source = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
  if (target === '-') {
    await pipeline(source, process.stdout);
    return 0;
  }
  // a tar entry costs a 512-byte header, often a pax header, and padding to 512 bytes
  const estimate = info ? info.bytes + info.count * 1280 + 1024 : 0;
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: ' {bar} {percentage}% | {mib} MiB', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.max(estimate, 1), 0, { mib: '0.0' });
  let written = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      written += chunk.length;
      if (written > estimate) bar.setTotal(written);
      bar.update(written, { mib: (written / 1024 / 1024).toFixed(1) });
      callback(null, chunk);
    },
  });
  await pipeline(source, count, createWriteStream(target));
  bar.setTotal(written);
  bar.update(written, { mib: (written / 1024 / 1024).toFixed(1) });
  bar.stop();
  process.stdout.write(`Exported ${info?.count ?? '?'} images of "${name}" to ${target} (${written} bytes)\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dataset: { type: 'string', short: 'd' },
      split: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 64;
  }
  switch (command) {
    case 'import':
      return importCommand(rest, values as Record<string, string | undefined>);
    case 'export':
      return exportCommand(rest[0], values.out);
    case 'status': {
      const job = (await (await call(`/images/imports/${rest[0] ?? ''}`)).json()) as Job;
      summary(job, 0);
      return 0;
    }
    case 'retry': {
      const job = (await (await call(`/images/imports/${rest[0] ?? ''}/retry`, { method: 'POST' })).json()) as Job;
      const started = performance.now();
      return summary(await follow(job.id), (performance.now() - started) / 1000);
    }
    default:
      throw new CliError(`Unknown command "${command}"\n${USAGE}`);
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof CliError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  } else throw err;
}
