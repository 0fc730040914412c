import { ConfigError } from '@berth/service-kit';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;

/**
 * A duration from the environment in milliseconds: a number with a unit (`500ms`, `30s`, `5m`,
 * `1h`, `7d`) or plain milliseconds (`1500`). Anything else, or a value outside [min, max], is a
 * ConfigError that names the variable and quotes the value.
 */
export function parseDuration(variable: string, value: string, range: { min: number; max: number }): number {
  const match = DURATION.exec(value.trim());
  if (!match) {
    throw new ConfigError(
      `${variable} "${value}" is not a duration; write a number with a unit (500ms, 30s, 5m, 1h, 7d) or plain milliseconds`,
    );
  }
  const ms = Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] as number));
  if (ms < range.min || ms > range.max) {
    throw new ConfigError(`${variable} "${value}" is out of range; use ${showMs(range.min)} to ${showMs(range.max)}`);
  }
  return ms;
}

function showMs(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS[unit] as number;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
