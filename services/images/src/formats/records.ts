import { FormatError } from './types.ts';

/** Label names by label byte: the given class names, or the byte's decimal digits. */
export function labelTable(classNames: readonly string[] | undefined): string[] {
  if (classNames === undefined) return Array.from({ length: 256 }, (_, byte) => String(byte));
  if (classNames.length === 0 || classNames.length > 256) {
    throw new FormatError(
      `A label byte names one of 1 to 256 classes, but ${classNames.length} class names were given`,
    );
  }
  return [...classNames];
}

/**
 * Checks that a file holding `count` fixed-size records after a header has exactly that many
 * bytes, naming the first incomplete record when it is short.
 */
export function checkRecordBytes(
  what: string,
  size: number,
  headerBytes: number,
  count: number,
  recordBytes: number,
): void {
  const expected = headerBytes + count * recordBytes;
  if (size < expected) {
    const body = Math.max(0, size - headerBytes);
    const whole = Math.floor(body / recordBytes);
    throw truncatedRecord(what, whole, body - whole * recordBytes, recordBytes);
  }
  if (size > expected) {
    throw new FormatError(`${what} has ${size - expected} bytes after its last record (${count} records)`);
  }
}

/** The error for a record cut short by the end of the file. */
export function truncatedRecord(what: string, record: number, have: number, recordBytes: number): FormatError {
  return new FormatError(`${what} is truncated at record ${record} (${have} of ${recordBytes} bytes)`, {
    index: record,
  });
}
