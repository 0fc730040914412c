import { useEffect } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { useLoad } from '../hooks.ts';
import { readUrl } from '../settings.ts';
import { Empty, Loading, Problem } from '../status.tsx';
import type { Image } from '../types.ts';
import { imagesHref } from './images.tsx';

/** A near-duplicate as the similar route lists it: the image (or its id), the hash distance and the verification score. */
export interface Match {
  id: string;
  label: string | null;
  dataset: string;
  split: string | null;
  distance: number | null;
  score: number | null;
}

/** A verification score as the page shows it: a percentage of alike, e.g. "98.7 % alike". */
export function scoreText(score: number): string {
  return `${(score * 100).toFixed(1)} % alike`;
}

type Raw = Record<string, unknown>;

const ANALYSIS_RETRY_MS = 1500;

/** Reads one listed image, nested ({ image, distance }) as the similar route sends it, or flat. */
export function toMatch(raw: Raw): Match {
  const nested = raw.image as Raw | undefined;
  const image = nested && typeof nested === 'object' ? nested : raw;
  const id = String(image.id ?? raw.imageId ?? '');
  const distance = raw.distance ?? image.distance;
  const score = raw.score ?? image.score;
  return {
    id,
    label: (image.label as string | null | undefined) ?? null,
    dataset: String(image.dataset ?? ''),
    split: (image.split as string | null | undefined) ?? null,
    distance: typeof distance === 'number' ? distance : null,
    score: typeof score === 'number' ? score : null,
  };
}

/** True for the 404 of a route this images service does not have yet. */
export function missingRoute(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404 && /^Route /.test(error.message);
}

/** A small thumbnail linking to the image's own page. */
export function MatchTile({ match, side }: { match: Match; side?: string }) {
  return (
    <a class="tile" href={`#/images/${match.id}`} data-id={match.id}>
      <img
        src={readUrl(`/images/${match.id}/thumbnail?size=128`)}
        alt={`${side ? `${side}: ` : ''}${match.label ?? 'unlabelled'}${match.split ? `, ${match.split}` : ''}`}
        width={128}
        height={128}
        decoding="async"
      />
      <span class="caption">
        {side ? `${side} · ` : ''}
        {match.label ?? '—'}
      </span>
    </a>
  );
}

const SIZE = (bytes: number) =>
  bytes < 1024
    ? `${bytes} B`
    : bytes < 1024 ** 2
      ? `${(bytes / 1024).toFixed(1)} KiB`
      : `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

/** One image: the picture, its metadata and its near-duplicates. */
export function ImageDetailView({ id }: { id: string }) {
  const image = useLoad(`image:${id}`, (signal) => api<Image>(`/images/${id}`, { signal }));
  const similar = useLoad(`similar:${id}`, (signal) => api<{ items: Raw[] }>(`/images/${id}/similar`, { signal }));
  // a new image is analysed by the images-worker within moments; ask again until it has been
  const notYet = similar.error instanceof ApiError && similar.error.code === 'IMAGE_NOT_ANALYSED';
  useEffect(() => {
    if (!notYet) return;
    const timer = setTimeout(similar.reload, ANALYSIS_RETRY_MS);
    return () => clearTimeout(timer);
  }, [notYet, similar.reload]);
  const img = image.data;
  return (
    <section class="detail">
      <p>
        <a href={imagesHref({ dataset: img?.dataset })}>← Back to the gallery</a>
      </p>
      <h1>Image {img ? (img.label ?? '(no label)') : ''}</h1>
      {image.loading && !img && <Loading />}
      {image.error !== undefined && <Problem error={image.error} onRetry={image.reload} />}
      {img && (
        <div class="detail-layout">
          <figure class="card">
            <img
              class={img.width <= 64 && img.height <= 64 ? 'full small' : 'full'}
              src={readUrl(`/images/${img.id}/file`)}
              alt={`${img.label ?? 'unlabelled'}, ${img.dataset}`}
            />
            <figcaption>{img.filename ?? img.id}</figcaption>
          </figure>
          <dl class="card meta-list">
            <dt>Data set</dt>
            <dd>
              <a href={imagesHref({ dataset: img.dataset })}>{img.dataset}</a>
            </dd>
            <dt>Label</dt>
            <dd>
              {img.label ? <a href={imagesHref({ dataset: img.dataset, label: img.label })}>{img.label}</a> : '—'}
            </dd>
            <dt>Split</dt>
            <dd>{img.split ?? '—'}</dd>
            <dt>Tags</dt>
            <dd>{img.tags.length ? img.tags.join(', ') : '—'}</dd>
            <dt>Format</dt>
            <dd>
              {img.format}, {img.width} × {img.height}, {img.channels} channel{img.channels === 1 ? '' : 's'}
            </dd>
            <dt>Size</dt>
            <dd>{SIZE(img.bytes)}</dd>
            <dt>Added</dt>
            <dd>
              <time dateTime={img.createdAt}>{new Date(img.createdAt).toLocaleString()}</time>
            </dd>
            <dt>SHA-256</dt>
            <dd class="mono">{img.sha256}</dd>
          </dl>
        </div>
      )}
      {img && (
        <div class="card">
          <h2>Near-duplicates</h2>
          {similar.loading && !similar.data && <Loading what="Looking for near-duplicates" />}
          {similar.error !== undefined &&
            (missingRoute(similar.error) ? (
              <Empty>Near-duplicate search is not available on this server yet.</Empty>
            ) : notYet ? (
              <Loading what="This image is waiting to be analysed" />
            ) : (
              <Problem error={similar.error} onRetry={similar.reload} />
            ))}
          {similar.data && similar.data.items.length === 0 && (
            <Empty>No near-duplicates found (or this image has not been analysed yet).</Empty>
          )}
          {similar.data && similar.data.items.length > 0 && (
            <ul class="grid" aria-label="Near-duplicates">
              {similar.data.items.map((raw) => {
                const match = toMatch(raw);
                return (
                  <li key={match.id}>
                    <MatchTile match={match} />
                    {match.score !== null && <span class="meta">{scoreText(match.score)}</span>}
                    {match.distance !== null && <span class="meta">distance {match.distance}</span>}
                  </li>
                );
              })}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}
