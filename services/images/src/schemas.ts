import { ErrorResponse } from '@berth/service-kit';
import { type Static, Type } from 'typebox';
import { FORMATS } from './db/images.ts';
import { UUID_PATTERN } from './ids.ts';
import { DATASET_PATTERN, LABEL_PATTERN, MAX_TAGS, RULES, SPLITS, TAG_PATTERN } from './names.ts';

/** A data set name. */
export const Dataset = Type.String({ pattern: DATASET_PATTERN, description: RULES.dataset });
/** A label. */
export const Label = Type.String({ pattern: LABEL_PATTERN, description: RULES.label });
/** A split. */
export const SplitName = Type.Union(
  SPLITS.map((s) => Type.Literal(s)),
  { description: RULES.split },
);
/** A tag. */
export const Tag = Type.String({ pattern: TAG_PATTERN, description: RULES.tag });

/** An image id in the path. */
export const IdParams = Type.Object({
  id: Type.String({ pattern: UUID_PATTERN, description: 'must be an image id (a UUID)' }),
});

/** POST /images query: the fields of a raw-body upload (multipart forms may carry them too). */
export const UploadQuery = Type.Object(
  {
    dataset: Type.Optional(Dataset),
    label: Type.Optional(Label),
    split: Type.Optional(SplitName),
    tags: Type.Optional(Type.String({ maxLength: 4096, description: RULES.tags })),
    filename: Type.Optional(Type.String({ maxLength: 255, description: 'must be at most 255 characters' })),
  },
  { additionalProperties: false },
);

/** GET /images query. */
export const ListQuery = Type.Object(
  {
    dataset: Type.Optional(Dataset),
    label: Type.Optional(Label),
    split: Type.Optional(
      Type.Union(
        [...SPLITS, 'none'].map((s) => Type.Literal(s)),
        {
          description: 'must be one of train, test, val, none',
        },
      ),
    ),
    tag: Type.Optional(Tag),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'must be a whole number from 1 to 500' }),
    cursor: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$', description: 'must be the nextCursor of a previous page' }),
    ),
  },
  { additionalProperties: false },
);

/** PATCH /images/:id body: any of label, split and tags, at least one; null clears label or split. */
export const PatchBody = Type.Object(
  {
    label: Type.Optional(Type.Union([Label, Type.Null()], { description: `${RULES.label}, or null` })),
    split: Type.Optional(Type.Union([SplitName, Type.Null()], { description: `${RULES.split}, or null` })),
    tags: Type.Optional(
      Type.Array(Tag, {
        maxItems: MAX_TAGS,
        description: `must be a list of at most ${MAX_TAGS} tags`,
      }),
    ),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'must name at least one of label, split, tags',
  },
);

/** GET /images/:id/thumbnail query. */
export const ThumbnailQuery = Type.Object(
  {
    size: Type.Unsafe<64 | 128 | 256>({
      type: 'integer',
      enum: [64, 128, 256],
      default: 128,
      description: 'must be 64, 128 or 256',
    }),
  },
  { additionalProperties: false },
);

/** GET /images/labels query. */
export const LabelsQuery = Type.Object({ dataset: Type.Optional(Dataset) }, { additionalProperties: false });

/** A data set name in the path. */
export const DatasetParams = Type.Object({ name: Dataset });

/** An image's metadata. */
export const Image = Type.Object({
  id: Type.String(),
  dataset: Type.String(),
  label: Type.Union([Type.String(), Type.Null()]),
  split: Type.Union([Type.String(), Type.Null()]),
  tags: Type.Array(Type.String()),
  sha256: Type.String(),
  format: Type.Union(FORMATS.map((f) => Type.Literal(f))),
  contentType: Type.String(),
  width: Type.Integer(),
  height: Type.Integer(),
  channels: Type.Integer(),
  bytes: Type.Integer(),
  filename: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  fileUrl: Type.String(),
});

/** A page of images. */
export const ImagePage = Type.Object({
  items: Type.Array(Image),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

const SplitCounts = Type.Object({
  train: Type.Integer(),
  test: Type.Integer(),
  val: Type.Integer(),
  none: Type.Integer(),
});

/** Data sets with their counts. */
export const DatasetList = Type.Object({
  items: Type.Array(
    Type.Object({
      name: Type.String(),
      count: Type.Integer(),
      bytes: Type.Integer(),
      labels: Type.Integer(),
      splits: SplitCounts,
    }),
  ),
});

/** Labels with their counts. */
export const LabelList = Type.Object({
  items: Type.Array(
    Type.Object({ label: Type.Union([Type.String(), Type.Null()]), count: Type.Integer(), splits: SplitCounts }),
  ),
});

/** A response of bytes in one of the given content types (files, thumbnails, archives): documented, not serialized. */
export function Binary(description: string, types: string[]) {
  const schema = { type: 'string', format: 'binary' };
  return { description, content: Object.fromEntries(types.map((type) => [type, { schema }])) };
}

/** A 304 to a conditional GET: no body. */
export const NotModified = {
  description: 'Not modified: the copy the client holds (If-None-Match) is current',
  type: 'null',
};

const FileField = { type: 'string', format: 'binary' };
const Text = (description: string) => ({ type: 'string', description });

/** POST /images body, read by the route itself: a multipart form or the raw image bytes. */
export const UploadBody = {
  'multipart/form-data': {
    schema: {
      type: 'object',
      required: ['file'],
      properties: {
        file: FileField,
        dataset: Text(`${RULES.dataset}; default "default"`),
        label: Text(RULES.label),
        split: Text(RULES.split),
        tags: Text(RULES.tags),
        filename: Text('must be at most 255 characters'),
      },
    },
  },
  'image/*': { schema: FileField },
};

/** POST /images/imports body, read by the route itself: the data set files and what they are. */
export const ImportBody = {
  'multipart/form-data': {
    schema: {
      type: 'object',
      required: ['dataset', 'files'],
      properties: {
        dataset: Text(RULES.dataset),
        split: Text(`${RULES.split}; for formats whose files do not say`),
        format: { type: 'string', enum: ['idx', 'cifar10', 'imagefolder'], description: 'detected when left out' },
        files: { type: 'array', items: FileField, description: 'the data set files, up to 16' },
      },
    },
  },
};

/** Error answers most routes can give. */
export const Errors = { 400: ErrorResponse, 503: ErrorResponse };

/** GET /images query. */
export type ListInput = Static<typeof ListQuery>;
/** PATCH /images/:id body. */
export type PatchInput = Static<typeof PatchBody>;
/** POST /images query. */
export type UploadInput = Static<typeof UploadQuery>;
