import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, query } from '../api.ts';
import { useImageEvents } from '../events.ts';
import { useLoad } from '../hooks.ts';
import { Empty, Loading, Problem } from '../status.tsx';
import type { Dataset, ImageEvent, LabelCount } from '../types.ts';
import { Gallery } from './gallery.tsx';
import { LiveFeed } from './live-feed.tsx';
import { UploadZone } from './upload.tsx';

/** The gallery's filters, kept in the URL so a view can be bookmarked and Back works. */
export interface Filters {
  dataset: string;
  label: string;
  split: string;
}

const SPLITS = [
  { value: '', label: 'Any split' },
  { value: 'train', label: 'train' },
  { value: 'test', label: 'test' },
  { value: 'val', label: 'val' },
  { value: 'none', label: 'No split' },
];

/** The hash of the images view for these filters. */
export function imagesHref(filters: Partial<Filters>): string {
  return `#/images${query({ dataset: filters.dataset, label: filters.label, split: filters.split })}`;
}

/** Counts change with every event; reload them at most this often while events arrive. */
const COUNTS_REFRESH_MS = 2000;

/** Data sets and label counts, the filters, the upload zone, the live feed and the gallery. */
export function ImagesView({ params }: { params: URLSearchParams }) {
  const filters: Filters = {
    dataset: params.get('dataset') ?? '',
    label: params.get('label') ?? '',
    split: params.get('split') ?? '',
  };
  const go = (next: Partial<Filters>) => {
    location.hash = imagesHref({ ...filters, ...next });
  };

  const [countsRound, setCountsRound] = useState(0);
  const datasets = useLoad(`datasets:${countsRound}`, (signal) =>
    api<{ items: Dataset[] }>('/images/datasets', { signal }),
  );
  const labels = useLoad(`labels:${filters.dataset}:${countsRound}`, (signal) =>
    api<{ items: LabelCount[] }>(`/images/labels${query({ dataset: filters.dataset })}`, { signal }),
  );
  const pending = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const onEvent = useCallback((_event: ImageEvent) => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = undefined;
      setCountsRound((r) => r + 1);
    }, COUNTS_REFRESH_MS);
  }, []);
  useImageEvents(onEvent);
  useEffect(() => () => clearTimeout(pending.current), []);

  const datasetItems = datasets.data?.items ?? [];
  const labelItems = labels.data?.items ?? [];
  return (
    <section class="images">
      <h1>Images</h1>
      <div class="images-layout">
        <aside class="side">
          <div class="card">
            <h2>Data sets</h2>
            {datasets.loading && !datasets.data && <Loading />}
            {datasets.error !== undefined && <Problem error={datasets.error} onRetry={datasets.reload} />}
            {datasets.data && datasetItems.length === 0 && (
              <Empty>No data sets yet. Upload an image or import a data set.</Empty>
            )}
            {datasetItems.length > 0 && (
              <ul class="choices" aria-label="Data sets">
                <li>
                  <button
                    type="button"
                    aria-pressed={filters.dataset === ''}
                    onClick={() => go({ dataset: '', label: '' })}
                  >
                    All data sets
                  </button>
                </li>
                {datasetItems.map((d) => (
                  <li key={d.name}>
                    <button
                      type="button"
                      aria-pressed={filters.dataset === d.name}
                      onClick={() => go({ dataset: d.name, label: '' })}
                    >
                      <span>{d.name}</span>
                      <span class="count">{d.count.toLocaleString('en')}</span>
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </div>
          <div class="card">
            <h2>Labels{filters.dataset ? ` in ${filters.dataset}` : ''}</h2>
            {labels.loading && !labels.data && <Loading />}
            {labels.error !== undefined && <Problem error={labels.error} onRetry={labels.reload} />}
            {labels.data && labelItems.length === 0 && <Empty>No labels here yet.</Empty>}
            {labelItems.length > 0 && (
              <ul class="choices" aria-label="Labels">
                {labelItems.map((l) => (
                  <li key={l.label ?? ''}>
                    <button
                      type="button"
                      disabled={l.label === null}
                      aria-pressed={l.label !== null && filters.label === l.label}
                      title={`train ${l.splits.train}, test ${l.splits.test}, val ${l.splits.val}, none ${l.splits.none}`}
                      onClick={() => go({ label: filters.label === l.label ? '' : (l.label ?? '') })}
                    >
                      <span>{l.label ?? '(no label)'}</span>
                      <span class="count">{l.count.toLocaleString('en')}</span>
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </div>
          <LiveFeed />
        </aside>
        <div class="content">
          <form class="filters row card" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
            <label>
              Data set
              <select
                name="dataset"
                value={filters.dataset}
                onChange={(e) => go({ dataset: e.currentTarget.value, label: '' })}
              >
                <option value="">All data sets</option>
                {datasetItems.map((d) => (
                  <option key={d.name} value={d.name}>
                    {d.name}
                  </option>
                ))}
                {filters.dataset && !datasetItems.some((d) => d.name === filters.dataset) && (
                  <option value={filters.dataset}>{filters.dataset}</option>
                )}
              </select>
            </label>
            <label>
              Label
              <select name="label" value={filters.label} onChange={(e) => go({ label: e.currentTarget.value })}>
                <option value="">Any label</option>
                {labelItems
                  .filter((l) => l.label !== null)
                  .map((l) => (
                    <option key={l.label} value={l.label ?? ''}>
                      {l.label}
                    </option>
                  ))}
                {filters.label && !labelItems.some((l) => l.label === filters.label) && (
                  <option value={filters.label}>{filters.label}</option>
                )}
              </select>
            </label>
            <label>
              Split
              <select name="split" value={filters.split} onChange={(e) => go({ split: e.currentTarget.value })}>
                {SPLITS.map((s) => (
                  <option key={s.value} value={s.value}>
                    {s.label}
                  </option>
                ))}
              </select>
            </label>
          </form>
          <UploadZone defaults={filters} />
          <Gallery filters={filters} />
        </div>
      </div>
    </section>
  );
}
