import { ErrorResponse } from '@berth/service-kit';
import { type Static, Type } from 'typebox';
import { FLAGS } from './flags.ts';

/** The longest joke the API takes, in characters. */
export const MAX_JOKE_LENGTH = 2000;

// Printable text: no control characters except tab and line breaks, no lone surrogates (which
// cannot be stored as UTF-8), and at least one character that is not a space
const TEXT = '^(?=[\\s\\S]*\\S)(?:[^\\p{Cc}\\p{Cs}]|[\\t\\n\\r])*$';
const LINE = '^(?=.*\\S)[^\\p{Cc}\\p{Cs}]*$';
const FLAG = `(?:${FLAGS.join('|')})`;

/** The joke text as clients send it. */
export const JokeText = Type.String({
  minLength: 1,
  maxLength: MAX_JOKE_LENGTH,
  pattern: TEXT,
  description: `must be 1 to ${MAX_JOKE_LENGTH} characters of text (no control characters, not only spaces)`,
});

/** A category name: a lowercase slug. */
export const Category = Type.String({
  pattern: '^[a-z][a-z0-9-]{0,31}$',
  description: 'must be a lowercase name of up to 32 characters: a-z first, then a-z, 0-9 and "-"',
});

/** A two-letter ISO 639-1 language code. */
export const Lang = Type.String({
  pattern: '^[a-z]{2}$',
  description: 'must be a two-letter lowercase language code such as "en"',
});

const FlagName = Type.Enum([...FLAGS], { description: `must be one of ${FLAGS.join(', ')}` });

/** The flags of a joke, as a list of names. */
export const Flags = Type.Array(FlagName, {
  uniqueItems: true,
  maxItems: FLAGS.length,
  description: `must be a list of distinct flags from ${FLAGS.join(', ')}`,
});

const FlagList = Type.String({
  pattern: `^${FLAG}(?:,${FLAG})*$`,
  description: `must be a comma-separated list of ${FLAGS.join(', ')}`,
});

/** A joke id in the path. */
export const IdParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'must be a whole number from 1 to 2147483647' }),
});

/** Query parameters that decide whether flagged jokes are shown. */
export const VisibilityQuery = {
  safe: Type.Optional(Type.Boolean({ description: 'must be true or false' })),
  include: Type.Optional(FlagList),
  exclude: Type.Optional(FlagList),
};

/** GET /jokes query. */
export const ListQuery = Type.Object(
  {
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        pattern: LINE,
        description: 'must be 1 to 200 characters of search text on one line',
      }),
    ),
    category: Type.Optional(Category),
    lang: Type.Optional(Lang),
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'must be a whole number from 1 to 100' }),
    cursor: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{1,200}$',
        description: 'must be the nextCursor of a previous page',
      }),
    ),
    ...VisibilityQuery,
  },
  { additionalProperties: false },
);

/** GET /jokes/random query. */
export const RandomQuery = Type.Object(
  {
    category: Type.Optional(Category),
    lang: Type.Optional(Lang),
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'must be a whole number from 1 to 10' })),
    ...VisibilityQuery,
  },
  { additionalProperties: false },
);

/** GET /jokes/:id query: only the flag choices. */
export const VisibilityOnlyQuery = Type.Object({ ...VisibilityQuery }, { additionalProperties: false });

/** GET /jokes/categories query. */
export const CategoriesQuery = Type.Object(
  { lang: Type.Optional(Lang), ...VisibilityQuery },
  { additionalProperties: false },
);

/** POST /jokes body. */
export const CreateBody = Type.Object(
  {
    joke: JokeText,
    category: Type.Optional(Category),
    lang: Type.Optional(Lang),
    flags: Type.Optional(Flags),
  },
  { additionalProperties: false },
);

/** PATCH /jokes/:id body: any of the writable fields, at least one. */
export const PatchBody = Type.Object(
  {
    joke: Type.Optional(JokeText),
    category: Type.Optional(Category),
    lang: Type.Optional(Lang),
    flags: Type.Optional(Flags),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'must name at least one of joke, category, lang, flags',
  },
);

/** A joke as the API serves it. */
export const Joke = Type.Object({
  id: Type.Integer(),
  joke: Type.String(),
  category: Type.String(),
  lang: Type.String(),
  flags: Type.Array(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

/** A page of jokes. */
export const JokePage = Type.Object({
  items: Type.Array(Joke),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

/** Several random jokes. */
export const JokeList = Type.Object({ items: Type.Array(Joke) });

/** Category names with how many (visible) jokes each holds. */
export const CategoryList = Type.Object({
  items: Type.Array(Type.Object({ name: Type.String(), count: Type.Integer() })),
});

/** The 409 for a joke that is already stored, naming it. */
export const DuplicateResponse = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
  existingId: Type.Integer(),
});

/** Error answers most routes can give. */
export const Errors = { 400: ErrorResponse, 503: ErrorResponse };

/** A joke as the API serves it. */
export type JokeOut = Static<typeof Joke>;
/** POST /jokes body. */
export type CreateInput = Static<typeof CreateBody>;
/** PATCH /jokes/:id body. */
export type PatchInput = Static<typeof PatchBody>;
/** GET /jokes query. */
export type ListInput = Static<typeof ListQuery>;
/** GET /jokes/random query. */
export type RandomInput = Static<typeof RandomQuery>;
/** GET /jokes/categories query. */
export type CategoriesInput = Static<typeof CategoriesQuery>;
/** Visibility-only query. */
export type VisibilityInput = Static<typeof VisibilityOnlyQuery>;
