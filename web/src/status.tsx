import type { ComponentChildren } from 'preact';
import { ApiError } from './api.ts';

/** A polite "loading" line that screen readers announce. */
export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p class="state loading" role="status">
      {what}…
    </p>
  );
}

/** An empty result, with what the person can do about it. */
export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="state empty">{children}</p>;
}

/** An error: a service that is down reads differently from a request that was wrong. */
export function Problem({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const api = error instanceof ApiError ? error : undefined;
  const message = api?.message ?? (error as Error)?.message ?? String(error);
  const title = !api
    ? 'Something went wrong'
    : api.status === 0
      ? 'The gateway cannot be reached'
      : api.down
        ? 'A service is down'
        : api.unauthorized
          ? 'Not allowed'
          : 'The request was refused';
  return (
    <div class={`state problem${api?.down ? ' down' : ''}`} role="alert">
      <strong>{title}</strong>
      <span>
        {message}
        {api && api.status > 0 ? ` (${api.status})` : ''}
      </span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
