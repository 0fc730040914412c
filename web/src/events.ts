import { useEffect, useState } from 'preact/hooks';
import { readUrl } from './settings.ts';
import type { ImageEvent } from './types.ts';

/** Where the live feed stands: connecting, receiving, or down (retrying). */
export type FeedState = 'connecting' | 'live' | 'down';

type Listener = (event: ImageEvent) => void;
type StateListener = (state: FeedState) => void;

const EVENT_TYPES = ['created', 'updated', 'deleted'] as const;
const RETRY_MS = [1000, 2000, 5000, 10_000];

/**
 * One EventSource on GET /images/events shared by every view that wants events. EventSource
 * resumes by itself (sending Last-Event-ID) after a dropped connection, but gives up on an HTTP
 * error such as the gateway's 503 while the images service is down; then the feed starts a new
 * one after a growing pause.
 */
class Feed {
  #source: EventSource | undefined;
  #listeners = new Set<Listener>();
  #stateListeners = new Set<StateListener>();
  #state: FeedState = 'connecting';
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #seen = new Set<string>();
  /** The stream sequence of the last event, so a feed started again resumes after it. */
  #last = '';

  get state(): FeedState {
    return this.#state;
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    this.#open();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0 && this.#stateListeners.size === 0) this.#close();
    };
  }

  watch(listener: StateListener): () => void {
    this.#stateListeners.add(listener);
    this.#open();
    listener(this.#state);
    return () => {
      this.#stateListeners.delete(listener);
      if (this.#listeners.size === 0 && this.#stateListeners.size === 0) this.#close();
    };
  }

  #setState(state: FeedState) {
    if (state === this.#state) return;
    this.#state = state;
    for (const listener of this.#stateListeners) listener(state);
  }

  #open() {
    if (this.#source || this.#timer) return;
    const source = new EventSource(readUrl(this.#last ? `/images/events?since=${this.#last}` : '/images/events'));
    this.#source = source;
    this.#setState('connecting');
    source.onopen = () => {
      this.#failures = 0;
      this.#setState('live');
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // an HTTP error: EventSource will not try again on its own
        this.#source = undefined;
        this.#setState('down');
        const delay = RETRY_MS[Math.min(this.#failures, RETRY_MS.length - 1)] ?? 10_000;
        this.#failures++;
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          if (this.#listeners.size + this.#stateListeners.size > 0) this.#open();
        }, delay);
      } else {
        this.#setState('connecting');
      }
    };
    const onMessage = (message: MessageEvent<string>) => this.#dispatch(message);
    source.addEventListener('message', onMessage);
    for (const type of EVENT_TYPES) source.addEventListener(type, onMessage);
  }

  #dispatch(message: MessageEvent<string>) {
    let event: ImageEvent;
    try {
      event = JSON.parse(message.data) as ImageEvent;
    } catch {
      return; // a comment or keep-alive that is not an event
    }
    if (!event || typeof event !== 'object' || !event.type || !event.imageId) return;
    if (/^[0-9]+$/.test(message.lastEventId)) this.#last = message.lastEventId;
    // a resumed or restarted stream may send an event again
    if (this.#seen.has(event.id)) return;
    this.#seen.add(event.id);
    if (this.#seen.size > 5000) this.#seen.clear();
    this.#setState('live');
    for (const listener of this.#listeners) listener(event);
  }

  #close() {
    this.#source?.close();
    this.#source = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

const feed = new Feed();

/** Calls `listener` for every image event while the component is mounted. */
export function useImageEvents(listener: Listener) {
  useEffect(() => feed.subscribe(listener), [listener]);
}

/** The live feed's state, for an indicator. */
export function useFeedState(): FeedState {
  const [state, setState] = useState<FeedState>(feed.state);
  useEffect(() => feed.watch(setState), []);
  return state;
}
