import pRetry from 'p-retry';

/** How a long-lived client keeps trying: exponential with jitter, capped, forever until aborted. */
export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: Error, attempt: number, nextDelayMs: number) => void;
}

/** The delay before attempt n (1-based): doubles from minMs up to maxMs, with up to 50 % jitter off. */
export function backoffDelay(attempt: number, minMs = 100, maxMs = 5000, random = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

/**
 * Runs connect until it succeeds, waiting longer after each failure; used at start-up so a service
 * comes up before its dependencies and reports not-ready until they answer.
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
