/** Latency figures in milliseconds, from exact per-request samples. */
export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** A growable list of float samples that does not box every number. */
export class Samples {
  #values = new Float64Array(1 << 16);
  #length = 0;

  /** Adds one sample. */
  push(value: number): void {
    if (this.#length === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.#length++] = value;
  }

  /** How many samples were added. */
  get length(): number {
    return this.#length;
  }

  /** Percentiles by nearest rank, so every figure is a latency some request really had. */
  summarize(): LatencySummary {
    const n = this.#length;
    if (n === 0) return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
    const sorted = this.#values.slice(0, n).sort();
    const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number;
    let sum = 0;
    for (const value of sorted) sum += value;
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[n - 1] as number, mean: sum / n };
  }
}

/** The median of a list (mean of the middle two for an even count); NaN for an empty list. */
export function median(values: number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const mid = Math.floor(n / 2);
  return n % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
