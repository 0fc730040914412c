import { useEffect, useState } from 'preact/hooks';
import { aborted, api, query } from '../api.ts';
import { useLoad } from '../hooks.ts';
import { Empty, Loading, Problem } from '../status.tsx';
import type { Dataset } from '../types.ts';
import { MatchTile, missingRoute, scoreText, toMatch } from './image-detail.tsx';

type Raw = Record<string, unknown>;

interface LeakPage {
  items: Raw[];
  nextCursor?: string | null;
  /** Images the worker has not analysed yet: the report is complete when this is 0. */
  unanalysed?: number;
}

const PENDING_RETRY_MS = 2000;

/** Test images that near-duplicate train images in a data set: a leak that flatters an evaluation. */
export function LeaksView({ params }: { params: URLSearchParams }) {
  const dataset = params.get('dataset') ?? '';
  const datasets = useLoad('datasets', (signal) => api<{ items: Dataset[] }>('/images/datasets', { signal }));
  const [extra, setExtra] = useState<{ items: Raw[]; next: string | null; loading: boolean; error?: unknown }>({
    items: [],
    next: null,
    loading: false,
  });
  const path = `/images/datasets/${encodeURIComponent(dataset)}/leaks`;
  const leaks = useLoad(`leaks:${dataset}`, async (signal) => {
    if (!dataset) return undefined;
    const page = await api<LeakPage>(path, { signal });
    setExtra({ items: [], next: page.nextCursor ?? null, loading: false });
    return page;
  });
  const more = async () => {
    if (!extra.next) return;
    setExtra((s) => ({ ...s, loading: true, error: undefined }));
    try {
      const page = await api<LeakPage>(`${path}${query({ cursor: extra.next })}`);
      setExtra((s) => ({ items: [...s.items, ...page.items], next: page.nextCursor ?? null, loading: false }));
    } catch (error) {
      if (!aborted(error)) setExtra((s) => ({ ...s, loading: false, error }));
    }
  };
  // while the worker is still analysing images of the data set, the report fills in: ask again
  const pending = leaks.data?.unanalysed ?? 0;
  useEffect(() => {
    if (pending === 0 || leaks.loading) return;
    const timer = setTimeout(leaks.reload, PENDING_RETRY_MS);
    return () => clearTimeout(timer);
  }, [pending, leaks.loading, leaks.reload]);
  const names = datasets.data?.items.map((d) => d.name) ?? [];
  const items = [...(leaks.data?.items ?? []), ...extra.items];
  return (
    <section class="leaks">
      <h1>Train/test leaks</h1>
      <p class="hint">
        A test image that is a near-duplicate of a train image makes the test score look better than it is.
      </p>
      <form class="row card" onSubmit={(e) => e.preventDefault()}>
        <label>
          Data set
          <select
            name="dataset"
            value={dataset}
            onChange={(e) => {
              location.hash = `#/leaks${query({ dataset: e.currentTarget.value })}`;
            }}
          >
            <option value="">Choose a data set</option>
            {names.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
            {dataset && !names.includes(dataset) && <option value={dataset}>{dataset}</option>}
          </select>
        </label>
      </form>
      {datasets.error !== undefined && <Problem error={datasets.error} onRetry={datasets.reload} />}
      {!dataset && <Empty>Choose a data set to check its test split against its train split.</Empty>}
      {dataset && leaks.loading && !leaks.data && <Loading what="Comparing test images with train images" />}
      {pending > 0 && (
        <p class="state loading" role="status">
          {pending.toLocaleString('en')} image{pending === 1 ? ' is' : 's are'} still being analysed; the report fills
          in as they are.
        </p>
      )}
      {dataset &&
        leaks.error !== undefined &&
        (missingRoute(leaks.error) ? (
          <Empty>The leak report is not available on this server yet.</Empty>
        ) : (
          <Problem error={leaks.error} onRetry={leaks.reload} />
        ))}
      {dataset && leaks.data && pending === 0 && items.length === 0 && (
        <Empty>No leaks: no test image in {dataset} near-duplicates a train image.</Empty>
      )}
      {items.length > 0 && (
        <div class="card">
          <h2>
            {items.length}
            {extra.next ? '+' : ''} pair{items.length === 1 ? '' : 's'} in {dataset}
          </h2>
          <ul class="pairs" aria-label="Leaks">
            {items.map((raw) => {
              // { distance, score, image: the test (or val) image, train: the train image it repeats }
              const test = toMatch({ image: raw.image ?? raw.test, distance: raw.distance, score: raw.score });
              const train = toMatch({ image: raw.train, distance: raw.distance, score: raw.score });
              return (
                <li key={`${test.id}-${train.id}`} class="pair">
                  <MatchTile match={test} side={test.split ?? 'test'} />
                  <MatchTile match={train} side="train" />
                  {test.score !== null && <span class="meta">{scoreText(test.score)}</span>}
                  {test.distance !== null && <span class="meta">{test.distance} bits apart</span>}
                </li>
              );
            })}
          </ul>
          {extra.error !== undefined && <Problem error={extra.error} onRetry={more} />}
          {extra.next && (
            <button type="button" onClick={more} disabled={extra.loading}>
              {extra.loading ? 'Loading…' : 'More pairs'}
            </button>
          )}
        </div>
      )}
    </section>
  );
}
