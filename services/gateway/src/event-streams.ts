import { type HttpError, httpError } from '@berth/service-kit';
import { normalizeIP } from '@fastify/rate-limit';

/** The key a client is counted under: its address, an IPv6 one by its /64 (as the rate limit counts). */
export function clientKey(ip: string): string {
  return ip.includes(':') ? normalizeIP(ip) : ip;
}

/** Seconds a client refused a stream is told to wait (Retry-After). */
export const RETRY_AFTER_S = 5;

/**
 * The open event streams of one gateway process, capped in all (EVENT_STREAMS_MAX) and per client
 * (EVENT_STREAMS_PER_CLIENT). A stream takes a place before it is forwarded and gives it back
 * when its response closes, however it ends.
 */
export class StreamSlots {
  readonly #max: number;
  readonly #perClient: number;
  readonly #byClient = new Map<string, number>();
  #open = 0;

  constructor(max: number, perClient: number) {
    this.#max = max;
    this.#perClient = perClient;
  }

  /** Streams open now. */
  get open(): number {
    return this.#open;
  }

  /** Takes a place for the client: a release function, or the 429 / 503 that says why there is none. */
  acquire(ip: string): (() => void) | HttpError {
    const key = clientKey(ip);
    const mine = this.#byClient.get(key) ?? 0;
    if (mine >= this.#perClient) {
      return httpError(
        429,
        'TOO_MANY_EVENT_STREAMS',
        `Client "${ip}" already has ${mine} event streams open, the most one client may; close one before opening another`,
      );
    }
    if (this.#open >= this.#max) {
      return httpError(
        503,
        'EVENT_STREAMS_FULL',
        `The gateway holds ${this.#open} event streams, the most it serves at once; retry in ${RETRY_AFTER_S} s`,
      );
    }
    this.#open += 1;
    this.#byClient.set(key, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open -= 1;
      const left = (this.#byClient.get(key) ?? 1) - 1;
      if (left === 0) this.#byClient.delete(key);
      else this.#byClient.set(key, left);
    };
  }
}
