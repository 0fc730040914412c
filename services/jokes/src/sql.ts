/**
 * Collects bind parameters while a statement is assembled from fixed fragments, so values only
 * ever travel as $n parameters and never inside the SQL text.
 */
export class Params {
  readonly values: unknown[] = [];

  /** Adds a value and returns its placeholder. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** Joins conditions with AND; TRUE when there are none. */
export function and(conditions: (string | undefined)[]): string {
  const present = conditions.filter((condition): condition is string => Boolean(condition));
  return present.length === 0 ? 'TRUE' : present.join(' AND ');
}
