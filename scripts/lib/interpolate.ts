/** Variables for interpolation: a name is either set (possibly to '') or absent. */
export type Variables = Readonly<Record<string, string | undefined>>;

// $$ | ${NAME} | ${NAME<op>word} | $NAME, with the operators Compose accepts: :- - :? ? :+ +
const REFERENCE = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/**
 * Expands `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR:+alt}` and `$VAR`
 * the way Docker Compose does, so `npm start` reads docker-compose.yml with the values compose would use.
 * Defaults are taken literally (no nested references).
 */
export function interpolate(text: string, vars: Variables): string {
  return text.replace(REFERENCE, (_match, dollar, braced, op, word, bare) => {
    if (dollar) return '$';
    const name: string = braced ?? bare;
    const value = vars[name];
    const unset = value === undefined;
    const empty = unset || value === '';
    switch (op) {
      case ':-':
        return empty ? word : (value as string);
      case '-':
        return unset ? word : (value as string);
      case ':?':
      case '?':
        if (op === ':?' ? empty : unset) throw new Error(`Variable "${name}" is required: ${word || 'it is not set'}`);
        return value as string;
      case ':+':
        return empty ? '' : word;
      case '+':
        return unset ? '' : word;
      default:
        return value ?? '';
    }
  });
}

/** Interpolates every string value in a parsed YAML tree (keys are left alone, as Compose does). */
export function interpolateTree<T>(node: T, vars: Variables): T {
  if (typeof node === 'string') return interpolate(node, vars) as T;
  if (Array.isArray(node)) return node.map((item) => interpolateTree(item, vars)) as T;
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = interpolateTree(value, vars);
    return out as T;
  }
  return node;
}
