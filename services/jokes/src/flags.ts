/** The content flags a joke can carry; a joke with none is safe. */
export const FLAGS = ['nsfw', 'religious', 'political', 'racist', 'sexist', 'explicit'] as const;

/** One content flag. */
export type Flag = (typeof FLAGS)[number];

/** What a reader asked to see: safe=false opens everything, include opens named flags, exclude closes them again. */
export interface Visibility {
  safe?: boolean;
  include?: string;
  exclude?: string;
}

function parseList(list: string | undefined): Flag[] {
  if (!list) return [];
  return list.split(',').filter((name): name is Flag => (FLAGS as readonly string[]).includes(name));
}

/**
 * The flags a reader allows: none by default, so flagged jokes appear only when asked for.
 * A joke is shown when every flag it carries is allowed.
 */
export function allowedFlags(visibility: Visibility): Flag[] {
  const opened = visibility.safe === false ? [...FLAGS] : parseList(visibility.include);
  const closed = new Set(parseList(visibility.exclude));
  return FLAGS.filter((flag) => opened.includes(flag) && !closed.has(flag));
}
