import { httpError } from '@berth/service-kit';

/** Bytes per sample of each libvips band format, as sharp's metadata names it in `depth`. */
const SAMPLE_BYTES: Record<string, number> = {
  uchar: 1,
  char: 1,
  ushort: 2,
  short: 2,
  uint: 4,
  int: 4,
  float: 4,
  complex: 8,
  double: 8,
  dpcomplex: 16,
};

/** What decoding an image costs in memory: width × height × channels × bytes per sample. */
export function decodedBytes(width: number, height: number, channels: number, depth: string | undefined): number {
  return width * height * Math.max(1, channels) * (SAMPLE_BYTES[depth ?? 'uchar'] ?? 1);
}

/** How images are decoded: the memory one may take, how many at once, how long each may take. */
export interface DecodeSettings {
  /** The most memory one image's pixels may take once decoded (MAX_DECODED_BYTES). */
  maxDecodedBytes: number;
  /** Decodes run at once for requests (DECODE_CONCURRENCY); background work queues behind them. */
  concurrency: number;
  /** How long a request's decode may wait for its turn before it is refused with 503. */
  waitMs: number;
  /** How long one decode may run before it is stopped (DECODE_TIMEOUT_MS). */
  timeoutMs: number;
}

/** What a process uses until buildApp says otherwise: generous, so tools and the worker are not held back. */
const DEFAULTS: DecodeSettings = { maxDecodedBytes: 400_000_000, concurrency: 4, waitMs: 10_000, timeoutMs: 60_000 };

/**
 * The decode queue of one process: at most `concurrency` decodes at once. A request waits at most
 * `waitMs` for its turn (503 DECODER_BUSY after), so a burst of costly images turns into fast
 * refusals instead of answers that come after the gateway gave up; background work (imports, the
 * inbox, the worker) waits as long as it takes.
 */
export class DecodeQueue {
  settings: DecodeSettings = { ...DEFAULTS };
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  /** Sets the limits (buildApp, from the environment). */
  configure(settings: DecodeSettings): void {
    this.settings = { ...settings };
  }

  /** Decodes running now and waiting for their turn. */
  get load(): { running: number; waiting: number } {
    return { running: this.#running, waiting: this.#waiting.length };
  }

  /**
   * Runs work when a place is free; `request` work gives up after waitMs with a 503. Work that runs
   * past timeoutMs is answered with a 422 at once, but keeps its place until libvips has stopped,
   * so refused decodes cannot pile up on the CPU.
   */
  async run<T>(work: () => Promise<T>, kind: 'request' | 'background'): Promise<T> {
    if (this.#running >= this.settings.concurrency) await this.#turn(kind);
    else this.#running += 1;
    const release = () => {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running -= 1;
    };
    let working: Promise<T>;
    try {
      working = work();
    } catch (err) {
      release();
      throw err;
    }
    working.then(release, release);
    const timeoutMs = this.settings.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(decodeTooSlow(timeoutMs)), timeoutMs);
    });
    try {
      return await Promise.race([working, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  #turn(kind: 'request' | 'background'): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const start = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiting.push(start);
      if (kind === 'background') return;
      const waitMs = this.settings.waitMs;
      timer = setTimeout(() => {
        const at = this.#waiting.indexOf(start);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(
          httpError(
            503,
            'DECODER_BUSY',
            `The service is decoding ${this.#running} images and ${this.#waiting.length} more wait; this one waited ${waitMs} ms, retry in a few seconds`,
          ),
        );
      }, waitMs);
    });
  }
}

/** This process's decode queue. */
export const decoding = new DecodeQueue();

/** The 422 for an image whose pixels would take more memory than MAX_DECODED_BYTES. */
export function decodesTooLarge(
  size: { width: number; height: number; channels: number; depth: string | undefined },
  limit: number,
) {
  const bits = 8 * (SAMPLE_BYTES[size.depth ?? 'uchar'] ?? 1);
  const bytes = decodedBytes(size.width, size.height, size.channels, size.depth);
  return httpError(
    422,
    'IMAGE_TOO_COSTLY',
    `The image is ${size.width}x${size.height} with ${size.channels} channels of ${bits} bits: ${bytes} bytes decoded, more than the limit of ${limit} (MAX_DECODED_BYTES); send it with 8 bits per channel or scaled down`,
  );
}

/** The 422 for an image whose decode ran past DECODE_TIMEOUT_MS. */
export function decodeTooSlow(timeoutMs: number) {
  return httpError(
    422,
    'IMAGE_TOO_COSTLY',
    `The image took longer than ${timeoutMs} ms to decode (DECODE_TIMEOUT_MS); send a smaller one`,
  );
}
