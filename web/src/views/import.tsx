import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Problem } from '../status.tsx';
import type { ImportJob } from '../types.ts';
import { imagesHref } from './images.tsx';

const POLL_MS = 500;
const FINISHED = new Set(['completed', 'failed', 'interrupted']);

/** Sends a data set (IDX, CIFAR-10 or an ImageFolder archive) to POST /images/imports and follows the job. */
export function ImportView() {
  const [dataset, setDataset] = useState('');
  const [split, setSplit] = useState('');
  const [format, setFormat] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [over, setOver] = useState(false);
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>();
  const [job, setJob] = useState<ImportJob>();
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useEffect(() => () => clearTimeout(timer.current), []);

  const follow = (id: string) => {
    timer.current = setTimeout(async () => {
      try {
        const current = await api<ImportJob>(`/images/imports/${id}`);
        setJob(current);
        setError(undefined);
        if (!FINISHED.has(current.status)) follow(id);
      } catch (err) {
        // a blip (the service restarting) should not end the watch
        setError(err);
        follow(id);
      }
    }, POLL_MS);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    clearTimeout(timer.current);
    setSending(true);
    setError(undefined);
    setJob(undefined);
    const form = new FormData();
    form.append('dataset', dataset.trim());
    if (split) form.append('split', split);
    if (format) form.append('format', format);
    for (const file of files) form.append('files', file, file.name);
    try {
      const started = await api<ImportJob>('/images/imports', { form });
      setJob(started);
      if (!FINISHED.has(started.status)) follow(started.id);
    } catch (err) {
      setError(err);
    } finally {
      setSending(false);
    }
  };

  const total = job?.total ?? null;
  const finished = job !== undefined && FINISHED.has(job.status);
  const percent =
    job && total ? Math.min(100, Math.floor((job.processed / total) * 100)) : job?.status === 'completed' ? 100 : 0;
  // an archive's size is known only once it has been read through: until then the bar just moves
  const unknown = job !== undefined && total === null && !finished;
  return (
    <section class="import">
      <h1>Import a data set</h1>
      <form class="card stack" onSubmit={submit}>
        <div class="row">
          <label>
            Data set name
            <input
              name="dataset"
              required
              pattern="[a-z0-9][a-z0-9._\-]{0,63}"
              placeholder="e.g. mnist"
              value={dataset}
              onInput={(e) => setDataset(e.currentTarget.value)}
            />
          </label>
          <label>
            Split
            <select name="split" value={split} onChange={(e) => setSplit(e.currentTarget.value)}>
              <option value="">From the files</option>
              <option value="train">train</option>
              <option value="test">test</option>
              <option value="val">val</option>
            </select>
          </label>
          <label>
            Format
            <select name="format" value={format} onChange={(e) => setFormat(e.currentTarget.value)}>
              <option value="">Detect</option>
              <option value="idx">MNIST IDX</option>
              <option value="cifar10">CIFAR-10 binary</option>
              <option value="imagefolder">ImageFolder archive</option>
            </select>
          </label>
        </div>
        {/* biome-ignore lint/a11y/noStaticElementInteractions: the drop target; the file input inside is the keyboard way */}
        <div
          class={`dropzone${over ? ' over' : ''}`}
          onDragOver={(e) => {
            e.preventDefault();
            setOver(true);
          }}
          onDragLeave={() => setOver(false)}
          onDrop={(e) => {
            e.preventDefault();
            setOver(false);
            setFiles([...(e.dataTransfer?.files ?? [])]);
          }}
        >
          <p>Drop the data set files here (e.g. both IDX files), or</p>
          <label class="file">
            Choose files
            <input type="file" name="files" multiple onChange={(e) => setFiles([...(e.currentTarget.files ?? [])])} />
          </label>
          {files.length > 0 && (
            <ul class="files" aria-label="Files to import">
              {files.map((f) => (
                <li key={f.name}>
                  {f.name} <span class="meta">{(f.size / 1024).toFixed(1)} KiB</span>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div>
          <button type="submit" disabled={sending || files.length === 0 || !dataset.trim()}>
            {sending ? 'Sending…' : 'Import'}
          </button>
        </div>
      </form>
      {error !== undefined && <Problem error={error} />}
      {job && (
        <div class="card job" data-status={job.status}>
          <h2>
            Import into <a href={imagesHref({ dataset: job.dataset })}>{job.dataset}</a>
          </h2>
          <div class="progress">
            <label for="import-progress">
              <span>
                {job.status === 'queued' ? 'Waiting to start' : job.status}
                {' · '}
                <span data-testid="import-percent">{unknown ? 'size not known yet' : `${percent} %`}</span>
              </span>
            </label>
            {unknown ? (
              <progress id="import-progress" max={100} />
            ) : (
              <progress id="import-progress" max={100} value={percent} aria-valuetext={`${percent} percent`}>
                {percent} %
              </progress>
            )}
          </div>
          <p role="status">
            {job.processed.toLocaleString('en')} of {total === null ? '?' : total.toLocaleString('en')} processed:{' '}
            {job.imported.toLocaleString('en')} imported, {job.duplicates.toLocaleString('en')} duplicates,{' '}
            {job.failed.toLocaleString('en')} failed.
          </p>
          {job.message && <p class="hint">{job.message}</p>}
          {job.errors.length > 0 && (
            <details>
              <summary>First errors</summary>
              <ul>
                {job.errors.map((e) => (
                  <li key={e.record}>
                    {e.record}: {e.message}
                  </li>
                ))}
              </ul>
            </details>
          )}
        </div>
      )}
    </section>
  );
}
