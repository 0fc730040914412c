import fc from 'fast-check';

/** One operation of the merged OpenAPI document, as the campaign aims at it. */
export interface Target {
  method: string;
  /** The path template, e.g. /jokes/{id}. */
  path: string;
  pathParams: string[];
  queryParams: string[];
  /** Field names of a JSON body, when the operation takes one. */
  jsonFields: string[] | undefined;
  /** Content types of a body the route reads itself (multipart, raw bytes). */
  otherBodies: string[];
}

/** The operations of an OpenAPI document. */
export function targets(doc: { paths: Record<string, Record<string, Record<string, unknown>>> }): Target[] {
  const out: Target[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const parameters = (op.parameters ?? []) as { in: string; name: string }[];
      const content = ((op.requestBody as { content?: Record<string, { schema?: { properties?: object } }> })
        ?.content ?? {}) as Record<string, { schema?: { properties?: object } }>;
      const json = content['application/json'];
      out.push({
        method: method.toUpperCase(),
        path,
        pathParams: parameters.filter((p) => p.in === 'path').map((p) => p.name),
        queryParams: parameters.filter((p) => p.in === 'query').map((p) => p.name),
        jsonFields: json ? Object.keys(json.schema?.properties ?? {}) : undefined,
        otherBodies: Object.keys(content).filter((type) => type !== 'application/json'),
      });
    }
  }
  return out;
}

/** A value written into JSON as raw text, so numbers JSON.stringify cannot make (1e309, -0) go out as they are. */
class Raw {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** JSON text of a value, Raw pieces written verbatim and strings with their odd characters escaped or not. */
export function toJson(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const SQL = [
  "' OR '1'='1",
  '1; DROP TABLE jokes; --',
  "1' UNION SELECT NULL, version() --",
  "') OR pg_sleep(5) IS NULL --",
  '$1',
  '%',
  '_',
  "\\'; SELECT 1; --",
];
const TRAVERSAL = [
  '../../etc/passwd',
  '..%2f..%2fetc%2fpasswd',
  '%2e%2e%2f%2e%2e%2f',
  '..\\..\\windows\\win.ini',
  '....//....//',
  '/etc/passwd',
  '%252e%252e%252f',
  'a/../../b',
  '.',
  '..',
];
const ODD_UNICODE = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff\ud800',
  '\u202etxt.exe',
  '\u200b\u200c\u200d\ufeff',
  'Z̸̡̛̖͎a̷̧͔l̶g̴o̵',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  'ｆｕｌｌｗｉｄｔｈ',
  'İıſK',
  '\r\n\r\nX-Injected: 1',
  '\u0085\u2028\u2029',
  '\uffff\ufffe',
];
const NUMBERS = [
  '-1',
  '0',
  '-0',
  '2147483648',
  '9223372036854775808',
  '99999999999999999999999999999',
  '1e309',
  '-1e309',
  '1.5',
  'NaN',
  'Infinity',
  '0x10',
  '1_000',
  '   7',
];

/** Strings that have broken things before: injections, traversals, odd Unicode, numbers out of range. */
export const hostile: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SQL, ...TRAVERSAL, ...ODD_UNICODE, ...NUMBERS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('a'.repeat(300), 'x'.repeat(5000), '') },
);

/** A JSON value to put in a body field: hostile strings, extreme numbers, wrong types. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostile,
  fc.constantFrom(...NUMBERS.slice(0, 8)).map((n) => new Raw(n)),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostile, { maxLength: 4 }),
  fc.constant({ nested: { deeper: [1, 'two', null] } }),
  fc.constant(new Raw('{"__proto__":{"polluted":true}}')),
  fc.constant(new Raw(`${'['.repeat(2000)}${']'.repeat(2000)}`)),
);

/** Bodies that are not JSON at all, or JSON cut short. */
export const brokenJson = fc.constantFrom(
  '{',
  '{"by":',
  '{"joke": "unterminated',
  "{'single': 'quotes'}",
  '[1, 2',
  '{"a":1,}',
  'null',
  'true',
  '"a string"',
  '[]',
  '\ufeff{}',
  '{"a":"\\ud800"}',
  '{"a":"\\u0000"}',
  '{"a":1}{"b":2}',
  '',
  ' ',
  '\u0000',
);

/** Content types a route did not ask for, malformed ones included. */
export const wrongContentType = fc.constantFrom(
  'text/plain',
  'application/xml',
  'application/x-www-form-urlencoded',
  'application/json; charset=utf-16',
  'application/octet-stream',
  'multipart/form-data',
  'multipart/form-data; boundary=',
  'image/png',
  'image/svg+xml',
  ';;;',
  'application/json, text/plain',
  'text/html; charset=x-unknown',
);

/** Percent-encodes a value for a path segment or query value; keeps it raw (dots, slashes, percents) when asked. */
export function encodePart(value: string, raw: boolean): string {
  const bytes = Buffer.from(value, 'utf8');
  let out = '';
  for (const byte of bytes) {
    const ch = String.fromCharCode(byte);
    const plain = /[A-Za-z0-9_~-]/.test(ch) || (raw && /[./%\\:@!$&'()*+,;=]/.test(ch));
    out += plain && byte < 0x80 ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A multipart body cut off at `keep` of its length, as a client that went away would leave it. */
export function truncatedMultipart(file: Buffer, fields: Record<string, string>, keep: number) {
  const boundary = `----berthfuzz${Math.floor(keep * 1e9).toString(16)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  const whole = Buffer.concat(parts);
  return {
    body: whole.subarray(0, Math.max(1, Math.floor(whole.length * keep))),
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}
