import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { aborted } from './api.ts';

/** The state of one load: its data, its error, and whether it is running. */
export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` when a key changes (aborting the previous run), and on reload(). A key rather than
 * a dependency list, so callers say in one string what the data depends on.
 */
export function useLoad<T>(key: string, load: (signal: AbortSignal) => Promise<T>): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ data: s.data, loading: true }));
    latest.current(controller.signal).then(
      (data) => setState({ data, loading: false }),
      (error) => {
        if (!aborted(error)) setState({ error, loading: false });
      },
    );
    return () => controller.abort();
  }, [key, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Calls `tick` every `ms` while the page is visible, and once at once. */
export function useInterval(tick: () => void, ms: number) {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    const run = () => {
      if (document.visibilityState === 'visible') latest.current();
    };
    const timer = setInterval(run, ms);
    document.addEventListener('visibilitychange', run);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', run);
    };
  }, [ms]);
}

/** The route in location.hash: its path and query, e.g. "/images" and dataset=mnist; updates on navigation. */
export interface Route {
  path: string;
  params: URLSearchParams;
}

/** Splits a hash ("#/images?label=cat") into its path and query. */
export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#/, '') || '/';
  const at = text.indexOf('?');
  const path = at < 0 ? text : text.slice(0, at);
  return { path: path || '/', params: new URLSearchParams(at < 0 ? '' : text.slice(at + 1)) };
}

/** The current route; re-renders on navigation. */
export function useRoute(): Route {
  const read = () => parseRoute(location.hash);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
