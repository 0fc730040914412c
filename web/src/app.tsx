import { useEffect, useRef } from 'preact/hooks';
import { useRoute } from './hooks.ts';
import { CounterView } from './views/counter.tsx';
import { ImageDetailView } from './views/image-detail.tsx';
import { ImagesView } from './views/images.tsx';
import { ImportView } from './views/import.tsx';
import { JokesView } from './views/jokes.tsx';
import { LeaksView } from './views/leaks.tsx';
import { SettingsView } from './views/settings.tsx';

const NAV = [
  { href: '#/', label: 'Counter', match: (p: string) => p === '/' },
  { href: '#/jokes', label: 'Jokes', match: (p: string) => p === '/jokes' },
  { href: '#/images', label: 'Images', match: (p: string) => p.startsWith('/images') },
  { href: '#/import', label: 'Import', match: (p: string) => p === '/import' },
  { href: '#/leaks', label: 'Leaks', match: (p: string) => p === '/leaks' },
  { href: '#/settings', label: 'Settings', match: (p: string) => p === '/settings' },
];

/** The page: a header with the views, and the view the hash names. */
export function App() {
  const route = useRoute();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  // after a navigation, focus moves to the new view so keyboard and screen-reader users start there
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
  }, [route.path]);

  const detail = /^\/images\/([0-9a-fA-F-]{36})$/.exec(route.path);
  let view = <NotFound />;
  if (route.path === '/') view = <CounterView />;
  else if (route.path === '/jokes') view = <JokesView />;
  else if (route.path === '/images') view = <ImagesView params={route.params} />;
  else if (detail?.[1]) view = <ImageDetailView id={detail[1].toLowerCase()} />;
  else if (route.path === '/import') view = <ImportView />;
  else if (route.path === '/leaks') view = <LeaksView params={route.params} />;
  else if (route.path === '/settings') view = <SettingsView />;

  return (
    <>
      <button type="button" class="skip" onClick={() => main.current?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <a class="brand" href="#/">
          berth
        </a>
        <nav aria-label="Views">
          <ul>
            {NAV.map((item) => (
              <li key={item.href}>
                <a href={item.href} aria-current={item.match(route.path) ? 'page' : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {view}
      </main>
    </>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no view here. <a href="#/">Go to the counter</a>.
      </p>
    </section>
  );
}
