// The parts of autocannon's programmatic API the benchmark uses; the package ships no types.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  /** Options accepted by autocannon(); only the ones used here. */
  export interface Options {
    url: string;
    connections?: number;
    duration?: number;
    pipelining?: number;
    timeout?: number;
    overallRate?: number;
    method?: string;
    headers?: Record<string, string>;
    /** Called with each connection's client before it sends anything. */
    setupClient?: (client: unknown) => void;
  }

  /** One histogram summary (latency in ms, requests and throughput per second). */
  export interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    total: number;
    p50: number;
    p99: number;
  }

  /** What a finished run reports. */
  export interface Result {
    url: string;
    duration: number;
    errors: number;
    timeouts: number;
    mismatches: number;
    non2xx: number;
    '2xx': number;
    latency: Histogram;
    requests: Histogram;
    throughput: Histogram;
    statusCodeStats: Record<string, { count: number }>;
  }

  /** A running benchmark; resolves with its result. */
  export interface Instance extends EventEmitter, PromiseLike<Result> {
    stop(): void;
  }

  /** Starts a benchmark against opts.url. */
  function autocannon(opts: Options): Instance;
  export default autocannon;
}
