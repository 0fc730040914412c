import { useState } from 'preact/hooks';
import { aborted, api, query } from '../api.ts';
import { useLoad } from '../hooks.ts';
import { Empty, Loading, Problem } from '../status.tsx';
import type { Joke, Page } from '../types.ts';

const PAGE = 10;

/** A random joke, a search with "more" pages over the cursor, and a form to add one. */
export function JokesView() {
  return (
    <section class="jokes">
      <h1>Jokes</h1>
      <RandomJoke />
      <SearchJokes />
      <AddJoke />
    </section>
  );
}

function RandomJoke() {
  const [round, setRound] = useState(0);
  const random = useLoad(`random:${round}`, (signal) => api<Joke>('/jokes/random', { signal }));
  return (
    <div class="card">
      <h2>Random</h2>
      {random.loading && !random.data && <Loading />}
      {random.error !== undefined && <Problem error={random.error} onRetry={random.reload} />}
      {random.data && random.error === undefined && (
        <blockquote class="joke" aria-live="polite" aria-busy={random.loading}>
          {random.data.joke}
          <footer>
            #{random.data.id} · {random.data.category}
          </footer>
        </blockquote>
      )}
      <button type="button" onClick={() => setRound((r) => r + 1)}>
        Another joke
      </button>
    </div>
  );
}

function SearchJokes() {
  const [draft, setDraft] = useState('');
  const [q, setQ] = useState('');
  const [items, setItems] = useState<Joke[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [more, setMore] = useState<{ loading: boolean; error?: unknown }>({ loading: false });

  const first = useLoad(`search:${q}`, async (signal) => {
    const page = await api<Page<Joke>>(`/jokes${query({ q, limit: PAGE })}`, { signal });
    setItems(page.items);
    setNext(page.nextCursor);
    return page;
  });

  const loadMore = async () => {
    if (!next) return;
    setMore({ loading: true });
    try {
      const page = await api<Page<Joke>>(`/jokes${query({ q, limit: PAGE, cursor: next })}`);
      setItems((old) => [...old, ...page.items]);
      setNext(page.nextCursor);
      setMore({ loading: false });
    } catch (error) {
      if (!aborted(error)) setMore({ loading: false, error });
    }
  };

  return (
    <div class="card">
      <h2>Search</h2>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setQ(draft.trim());
        }}
      >
        <label>
          Words to look for
          <input
            type="search"
            name="q"
            value={draft}
            maxLength={200}
            onInput={(e) => setDraft(e.currentTarget.value)}
          />
        </label>
        <button type="submit">Search</button>
      </form>
      {first.loading && <Loading what="Searching" />}
      {first.error !== undefined && <Problem error={first.error} onRetry={first.reload} />}
      {!first.loading && first.error === undefined && items.length === 0 && (
        <Empty>{q ? `No joke matches "${q}".` : 'There are no jokes yet: add the first one below.'}</Empty>
      )}
      {items.length > 0 && !first.loading && (
        <ol class="joke-list" aria-label={q ? `Jokes matching "${q}"` : 'Jokes'}>
          {items.map((joke) => (
            <li key={joke.id}>
              {joke.joke}
              <span class="meta">
                #{joke.id} · {joke.category}
              </span>
            </li>
          ))}
        </ol>
      )}
      {more.error !== undefined && <Problem error={more.error} onRetry={loadMore} />}
      {next && !first.loading && (
        <button type="button" onClick={loadMore} disabled={more.loading}>
          {more.loading ? 'Loading…' : 'More jokes'}
        </button>
      )}
    </div>
  );
}

function AddJoke() {
  const [text, setText] = useState('');
  const [category, setCategory] = useState('');
  const [state, setState] = useState<{ busy: boolean; error?: unknown; added?: Joke }>({ busy: false });

  const submit = async (e: Event) => {
    e.preventDefault();
    setState({ busy: true });
    try {
      const body: { joke: string; category?: string } = { joke: text };
      if (category.trim()) body.category = category.trim();
      const added = await api<Joke>('/jokes', { json: body });
      setState({ busy: false, added });
      setText('');
    } catch (error) {
      setState({ busy: false, error });
    }
  };

  return (
    <div class="card">
      <h2>Add a joke</h2>
      <form class="stack" onSubmit={submit}>
        <label>
          Joke
          <textarea
            name="joke"
            rows={3}
            maxLength={2000}
            required
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </label>
        <label>
          Category (optional)
          <input
            name="category"
            value={category}
            pattern="[a-z][a-z0-9\-]{0,31}"
            placeholder="e.g. programming"
            onInput={(e) => setCategory(e.currentTarget.value)}
          />
        </label>
        <div>
          <button type="submit" disabled={state.busy || !text.trim()}>
            {state.busy ? 'Adding…' : 'Add joke'}
          </button>
        </div>
      </form>
      {state.error !== undefined && <Problem error={state.error} />}
      {state.added && (
        <p class="ok" role="status">
          Added joke #{state.added.id}.
        </p>
      )}
    </div>
  );
}
