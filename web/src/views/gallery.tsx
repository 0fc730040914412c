import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { aborted, api, query } from '../api.ts';
import { useImageEvents } from '../events.ts';
import { Empty, Loading, Problem } from '../status.tsx';
import { fetchThumbnails, THUMBNAIL_SIZE, thumbnailUrl } from '../thumbnails.ts';
import type { Image, ImageEvent, Page } from '../types.ts';
import type { Filters } from './images.tsx';

/** Images per page: a screenful or two of 128-pixel thumbnails. */
export const PAGE_SIZE = 100;
/** The User Timing measure of the first page, from the request to the last thumbnail decoded. */
export const FIRST_PAGE_MEASURE = 'gallery-first-page';

/** True when an image passes the gallery's filters. */
function matches(image: Image, filters: Filters): boolean {
  if (filters.dataset && image.dataset !== filters.dataset) return false;
  if (filters.label && image.label !== filters.label) return false;
  if (filters.split === 'none') return image.split === null;
  return !filters.split || image.split === filters.split;
}

/** The alternative text of a thumbnail: what a person would want to know about it. */
function describe(image: Image): string {
  const parts = [image.label ?? 'unlabelled', image.dataset];
  if (image.split) parts.push(image.split);
  return parts.join(', ');
}

interface State {
  items: Image[];
  next: string | null;
  loading: boolean;
  error?: unknown;
  /** Images that arrived through the live feed after the first page, newest first. */
  live: Image[];
  /**
   * The pages' thumbnails by image id: a data: URL from the page's batch, or null while the batch
   * is on its way. Images not in here (live ones, ones the batch left out) load their own.
   */
  thumbs: Readonly<Record<string, string | null>>;
}

const EMPTY: State = { items: [], next: null, loading: true, live: [], thumbs: {} };

/**
 * The filtered images as thumbnails: pages of 100 over the cursor API, the next one fetched when
 * the end of the grid scrolls into view (or its button is pressed), and images created meanwhile
 * shown first as they arrive on the live feed. A page's thumbnails come in one request (a hundred
 * separate ones queue on the browser's six connections and cost seconds).
 */
export function Gallery({ filters }: { filters: Filters }) {
  const key = `${filters.dataset}\u0000${filters.label}\u0000${filters.split}`;
  const [state, setState] = useState<State>(EMPTY);
  const controller = useRef<AbortController | undefined>(undefined);
  const firstPage = useRef<{ ids: Set<string>; done: number }>({ ids: new Set(), done: 0 });
  // batches are not cancelled by the next page's request, only when the filters change
  const batches = useRef<AbortController>(new AbortController());

  /** Asks for a page's thumbnails in one batch; on failure each image loads its own. */
  const loadThumbnails = useCallback(async (ids: string[]) => {
    const { signal } = batches.current;
    let urls = new Map<string, string>();
    try {
      urls = await fetchThumbnails(ids, signal);
    } catch (error) {
      if (aborted(error) || signal.aborted) return;
    }
    if (signal.aborted) return;
    setState((s) => {
      const thumbs = { ...s.thumbs };
      for (const id of ids) {
        const url = urls.get(id);
        if (url) thumbs[id] = url;
        else delete thumbs[id];
      }
      return { ...s, thumbs };
    });
  }, []);

  const load = useCallback(
    async (cursor: string | null) => {
      controller.current?.abort();
      const ctl = new AbortController();
      controller.current = ctl;
      setState((s) => ({ ...s, loading: true, error: undefined }));
      if (cursor === null) performance.mark(`${FIRST_PAGE_MEASURE}-start`);
      try {
        const page = await api<Page<Image>>(
          `/images${query({ ...filters, limit: PAGE_SIZE, cursor: cursor ?? undefined })}`,
          { signal: ctl.signal },
        );
        const ids = page.items.map((i) => i.id);
        if (cursor === null) firstPage.current = { ids: new Set(ids), done: 0 };
        const waiting = Object.fromEntries(ids.map((id) => [id, null]));
        setState((s) => ({
          ...s,
          items: cursor === null ? page.items : [...s.items, ...page.items],
          next: page.nextCursor,
          loading: false,
          thumbs: cursor === null ? waiting : { ...s.thumbs, ...waiting },
        }));
        void loadThumbnails(ids);
      } catch (error) {
        if (!aborted(error)) setState((s) => ({ ...s, loading: false, error }));
      }
    },
    [key, loadThumbnails],
  );

  useEffect(() => {
    setState(EMPTY);
    batches.current = new AbortController();
    void load(null);
    return () => {
      controller.current?.abort();
      batches.current.abort();
    };
  }, [load]);

  const onEvent = useCallback(
    (event: ImageEvent) => {
      setState((s) => {
        const drop = (list: Image[]) => list.filter((i) => i.id !== event.imageId);
        if (event.type === 'deleted') return { ...s, items: drop(s.items), live: drop(s.live) };
        const image = event.image;
        if (!image || !matches(image, filters)) return { ...s, items: drop(s.items), live: drop(s.live) };
        const known = s.items.some((i) => i.id === image.id) || s.live.some((i) => i.id === image.id);
        if (known) {
          const swap = (list: Image[]) => list.map((i) => (i.id === image.id ? image : i));
          return { ...s, items: swap(s.items), live: swap(s.live) };
        }
        return { ...s, live: [image, ...s.live] };
      });
    },
    [key],
  );
  useImageEvents(onEvent);

  // the first page's last thumbnail decoded: how long the gallery took to fill, as a User Timing measure
  const thumbnailDone = useCallback((id: string) => {
    const first = firstPage.current;
    if (!first.ids.has(id)) return;
    first.ids.delete(id);
    first.done++;
    if (first.ids.size === 0) {
      const measure = performance.measure(FIRST_PAGE_MEASURE, `${FIRST_PAGE_MEASURE}-start`);
      document.documentElement.dataset.galleryFirstPageMs = measure.duration.toFixed(0);
    }
  }, []);

  const sentinel = useRef<HTMLButtonElement>(null);
  const { next, loading, error } = state;
  useEffect(() => {
    const target = sentinel.current;
    if (!target || !next || loading || error !== undefined) return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) void load(next);
      },
      { rootMargin: '600px 0px' },
    );
    observer.observe(target);
    return () => observer.disconnect();
  }, [next, loading, error, load]);

  const seen = new Set<string>();
  const tiles: { image: Image; live: boolean }[] = [];
  const add = (image: Image, live: boolean) => {
    if (seen.has(image.id)) return;
    seen.add(image.id);
    tiles.push({ image, live });
  };
  for (const image of state.live) add(image, true);
  for (const image of state.items) add(image, false);
  const firstLoad = state.loading && state.items.length === 0;

  return (
    <div class="gallery card" aria-busy={state.loading}>
      <h2>
        Gallery <span class="count">{tiles.length > 0 ? `${tiles.length.toLocaleString('en')} shown` : ''}</span>
      </h2>
      {firstLoad && <Loading what="Loading images" />}
      {!state.loading && state.error === undefined && tiles.length === 0 && (
        <Empty>No images match these filters. Upload one above or import a data set.</Empty>
      )}
      {tiles.length > 0 && (
        <ul class="grid" aria-label="Images">
          {tiles.map(({ image, live }) => (
            <li key={image.id} class={live ? 'new' : undefined} data-source={live ? 'live' : 'page'}>
              <a
                class={image.width <= 64 && image.height <= 64 ? 'tile small' : 'tile'}
                href={`#/images/${image.id}`}
                data-id={image.id}
              >
                <img
                  src={image.id in state.thumbs ? (state.thumbs[image.id] ?? undefined) : thumbnailUrl(image.id)}
                  alt={describe(image)}
                  width={THUMBNAIL_SIZE}
                  height={THUMBNAIL_SIZE}
                  decoding="async"
                  onLoad={() => thumbnailDone(image.id)}
                  onError={() => thumbnailDone(image.id)}
                />
                <span class="caption">{image.label ?? '—'}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
      {state.error !== undefined && (
        <Problem error={state.error} onRetry={() => load(state.items.length ? next : null)} />
      )}
      {next && state.error === undefined && (
        <button type="button" class="more" ref={sentinel} onClick={() => load(next)} disabled={state.loading}>
          {state.loading ? 'Loading more…' : 'Load more images'}
        </button>
      )}
      {!next && !state.loading && state.items.length > 0 && <p class="hint">That is all of them.</p>}
    </div>
  );
}
