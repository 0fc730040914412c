/** closed: requests flow; open: refused without touching the network; half-open: one probe decides. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** When to open and for how long; who hears about changes. */
export interface BreakerOptions {
  /** Consecutive failures that open the circuit; 0 never opens it. */
  failures: number;
  cooldownMs: number;
  onChange?: (state: CircuitState, breaker: CircuitBreaker) => void;
  now?: () => number;
}

/**
 * A circuit breaker for one upstream. After `failures` connection failures or timeouts in a row
 * it opens: calls are refused at once, costing a comparison rather than a connect timeout. After
 * the cool-down one call goes through as a probe; its success closes the circuit, its failure
 * opens it for another cool-down. Any answer from the upstream, whatever its status, is a success.
 */
export class CircuitBreaker {
  #state: CircuitState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #probing = false;
  readonly #options: BreakerOptions;
  readonly #now: () => number;

  constructor(options: BreakerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** Failures in a row so far. */
  get failures(): number {
    return this.#failures;
  }

  /** Milliseconds until an open circuit lets a probe through; 0 when it is not open. */
  retryInMs(): number {
    if (this.#state !== 'open') return 0;
    return Math.max(0, this.#openedAt + this.#options.cooldownMs - this.#now());
  }

  /** Whether a call may go out now; in half-open, true for the one probe only. Pair with an outcome. */
  allow(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.retryInMs() > 0) return false;
      this.#set('half-open');
    }
    if (this.#probing) return false;
    this.#probing = true;
    return true;
  }

  /** The upstream answered. */
  success(): void {
    this.#failures = 0;
    this.#probing = false;
    if (this.#state !== 'closed') this.#set('closed');
  }

  /** The upstream could not be reached or did not answer in time. */
  failure(): void {
    this.#failures++;
    this.#probing = false;
    const threshold = this.#options.failures;
    if (this.#state === 'half-open' || (threshold > 0 && this.#failures >= threshold && this.#state === 'closed')) {
      this.#openedAt = this.#now();
      this.#set('open');
    }
  }

  /** The call ended for a reason that says nothing about the upstream (the client left, the body was refused). */
  neutral(): void {
    this.#probing = false;
  }

  #set(state: CircuitState) {
    this.#state = state;
    this.#options.onChange?.(state, this);
  }
}
