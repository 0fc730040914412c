import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** True when something accepts a TCP connection on host:port within the timeout. */
export function portAnswers(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Options for waitForHealth. */
export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
}

/**
 * Polls a health URL until it answers 2xx. Throws when the time is up (naming the URL) or when the
 * signal aborts, so a caller waiting on a process that died does not sit out the whole timeout.
 */
export async function waitForHealth(url: string, options: WaitOptions = {}): Promise<void> {
  const { timeoutMs = 30_000, intervalMs = 200, signal } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // Not listening yet; try again until the deadline.
    }
    if (Date.now() >= deadline) throw new Error(`"${url}" did not answer within ${timeoutMs / 1000} s`);
    await sleep(intervalMs, undefined, { signal });
  }
}
