import { styleText } from 'node:util';

type Color = Parameters<typeof styleText>[0];
const COLORS: Color[] = ['cyan', 'yellow', 'green', 'magenta', 'blue', 'redBright', 'greenBright', 'cyanBright'];

/** Writes one line for a named source, compose style (`counter  | ...`). */
export type LineWriter = (source: string, line: string) => void;

/**
 * One log stream for several processes: each line is prefixed with its source's name, padded to the
 * longest name, colored per source when stdout is a terminal (styleText checks, and honours NO_COLOR).
 */
export function prefixedLog(sources: string[], out: NodeJS.WriteStream = process.stdout): LineWriter {
  const width = Math.max(...sources.map((s) => s.length));
  const colors = new Map(sources.map((s, i) => [s, COLORS[i % COLORS.length] as Color]));
  return (source, line) => {
    const label = `${source.padEnd(width)} |`;
    const color = colors.get(source);
    out.write(`${color ? styleText(color, label, { stream: out }) : label} ${line}\n`);
  };
}
