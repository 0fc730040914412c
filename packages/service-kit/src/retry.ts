import pRetry from 'p-retry';

/** How a long-lived client keeps trying: exponential with jitter, capped, forever until aborted. */
export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: Error, attempt: number, nextDelayMs: number) => void;
}

/**
 * The delay before reconnect attempt n (1-based) for clients with a reconnect loop of their own
 * (ioredis): doubles from minMs up to maxMs, with up to 50 % jitter off.
 */
export function backoffDelay(attempt: number, minMs = 100, maxMs = 5000, random = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

/**
 * Runs connect until it succeeds or the signal aborts, waiting longer after each failure (p-retry's
 * exponential curve: minMs doubling to maxMs, randomized 1 to 2 times); used at start-up so a service
 * comes up before its dependencies and reports not-ready until they answer. A TypeError that is not
 * a network failure is a bug, not an outage, and ends the attempts at once.
 */
export function connectWithBackoff<T>(connect: () => Promise<T>, options: BackoffOptions = {}): Promise<T> {
  const { minMs = 100, maxMs = 5000, signal, onRetry } = options;
  return pRetry(connect, {
    retries: Number.POSITIVE_INFINITY,
    factor: 2,
    minTimeout: minMs,
    maxTimeout: maxMs,
    randomize: true,
    signal,
    onFailedAttempt: ({ error, attemptNumber, retryDelay }) => {
      onRetry?.(error, attemptNumber, retryDelay);
    },
  });
}
