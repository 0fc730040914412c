import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { useInterval } from '../hooks.ts';
import { Loading, Problem } from '../status.tsx';

const POLL_MS = 2000;
const NAME = /^(?!\.\.?$)[a-z0-9._-]{1,64}$/;

interface Counter {
  name: string;
  value: number;
}

/** The Docker sample's hit counter and a named counter read every two seconds. */
export function CounterView() {
  const [name, setName] = useState('page-views');
  const [draft, setDraft] = useState('page-views');
  const [counter, setCounter] = useState<Counter>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [sample, setSample] = useState<string>();
  const [sampleError, setSampleError] = useState<unknown>();

  const read = async () => {
    try {
      setCounter(await api<Counter>(`/counter/${encodeURIComponent(name)}`));
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  };
  useInterval(read, POLL_MS);
  useEffect(() => {
    setCounter(undefined);
    void read();
  }, [name]);

  const add = async () => {
    setBusy(true);
    try {
      setCounter(await api<Counter>(`/counter/${encodeURIComponent(name)}/increment`, { method: 'POST', json: {} }));
      setError(undefined);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const visit = async () => {
    try {
      const res = await fetch('/', { headers: { accept: 'text/plain' } });
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { message?: string };
        throw new ApiError(res.status, '', body.message ?? res.statusText);
      }
      setSample(await res.text());
      setSampleError(undefined);
    } catch (err) {
      setSampleError(err instanceof ApiError ? err : new ApiError(0, 'NETWORK', 'The gateway cannot be reached'));
    }
  };

  const invalid = !NAME.test(draft);
  return (
    <section class="counter">
      <h1>Hit counter</h1>
      <div class="card">
        <h2>The Docker sample</h2>
        <p>
          <code>GET /</code> counts a visit in Redis and says how many there have been.
        </p>
        <button type="button" onClick={visit}>
          Visit <code>/</code>
        </button>
        {sample && (
          <p class="sample" aria-live="polite">
            {sample}
          </p>
        )}
        {sampleError !== undefined && <Problem error={sampleError} />}
      </div>
      <div class="card">
        <h2>A named counter, live</h2>
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            if (!invalid) setName(draft);
          }}
        >
          <label>
            Counter name
            <input
              name="counter"
              value={draft}
              onInput={(e) => setDraft(e.currentTarget.value)}
              aria-invalid={invalid}
              aria-describedby="counter-rule"
              required
            />
          </label>
          <button type="submit" disabled={invalid}>
            Show
          </button>
        </form>
        <p id="counter-rule" class={invalid ? 'hint bad' : 'hint'}>
          1 to 64 characters of a-z, 0-9, ".", "_" and "-".
        </p>
        {counter ? (
          <p class="big" aria-live="polite" data-testid="counter-value">
            <span class="label">{counter.name}</span> {counter.value.toLocaleString('en')}
          </p>
        ) : error === undefined ? (
          <Loading />
        ) : null}
        {error !== undefined && <Problem error={error} onRetry={read} />}
        <button type="button" onClick={add} disabled={busy}>
          Add 1
        </button>
        <p class="hint">The value refreshes every two seconds, so other clients' changes show up here.</p>
      </div>
    </section>
  );
}
