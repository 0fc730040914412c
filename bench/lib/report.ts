import type { LoadResult } from './load.ts';
import type { Check, Section } from './scenario.ts';

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** req/s with thousands separators. */
export function formatRps(value: number): string {
  return Number.isNaN(value) ? '-' : integer.format(value);
}

/** Milliseconds with two decimals; signed when it is a difference. */
export function formatMs(value: number, signed = false): string {
  if (Number.isNaN(value)) return '-';
  const text = value.toFixed(2);
  return signed && value >= 0 ? `+${text}` : text;
}

/** One progress line for a finished load run. */
export function describeRun(label: string, result: LoadResult): string {
  const failures = result.non2xx + result.errors;
  const problems = failures > 0 ? `  FAILED REQUESTS: ${result.non2xx} non-2xx, ${result.errors} errors` : '';
  return `${label.padEnd(40)} ${formatRps(result.rps).padStart(7)} req/s  p50 ${formatMs(result.latency.p50).padStart(6)} ms  p99 ${formatMs(result.latency.p99).padStart(7)} ms${problems}`;
}

/** Plain text table: first column left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('   ');
  const rule = widths.map((w) => '-'.repeat(w)).join('   ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** A figures section as text. */
export function formatSection(section: Section): string {
  const rows = section.rows.map((row) => [
    row.label,
    formatRps(row.rps),
    formatMs(row.p50),
    formatMs(row.p99),
    row.failures > 0 ? `${row.failures} FAILED` : '0',
  ]);
  const text = table(['', 'req/s', 'p50 ms', 'p99 ms', 'failed'], rows);
  return `${section.title}\n${text}${section.footer ? `\n${section.footer}` : ''}`;
}

function formatValue(value: number, unit: Check['unit']): string {
  if (Number.isNaN(value)) return '-';
  return unit === 'x' ? `${value.toFixed(2)} ×` : `${value.toFixed(2)} ms`;
}

/** The targets table: measured value next to the issue's target, met or missed. */
export function formatChecks(checks: Check[]): string {
  const rows = checks.map((c) => [
    c.name,
    formatValue(c.value, c.unit),
    `${c.op === '>=' ? '≥' : '≤'} ${c.unit === 'x' ? `${c.target} ×` : `${c.target} ms`}`,
    c.status,
  ]);
  return table(['target', 'measured', 'goal', 'status'], rows);
}
