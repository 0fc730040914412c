import { useCallback, useState } from 'preact/hooks';
import { useFeedState, useImageEvents } from '../events.ts';
import type { ImageEvent } from '../types.ts';

const KEEP = 8;
const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  down: 'Not connected; trying again',
} as const;

/** The feed's state and its last few events. */
export function LiveFeed() {
  const state = useFeedState();
  const [events, setEvents] = useState<ImageEvent[]>([]);
  const onEvent = useCallback((event: ImageEvent) => setEvents((old) => [event, ...old].slice(0, KEEP)), []);
  useImageEvents(onEvent);
  return (
    <div class="card feed">
      <h2>Live events</h2>
      <p class={`feed-state ${state}`} role="status" data-state={state}>
        <span class="dot" aria-hidden="true" /> {STATE_TEXT[state]}
      </p>
      {events.length === 0 ? (
        <p class="hint">New, changed and removed images show up here as they happen.</p>
      ) : (
        <ol class="events" aria-label="Latest events">
          {events.map((e) => (
            <li key={e.id}>
              <span class={`tag ${e.type}`}>{e.type}</span>{' '}
              {e.type === 'deleted' ? (
                <span>{e.image?.label ?? e.imageId.slice(0, 8)}</span>
              ) : (
                <a href={`#/images/${e.imageId}`}>{e.image?.label ?? e.imageId.slice(0, 8)}</a>
              )}{' '}
              <span class="meta">
                in {e.dataset} · <time dateTime={e.occurredAt}>{new Date(e.occurredAt).toLocaleTimeString()}</time>
              </span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}
