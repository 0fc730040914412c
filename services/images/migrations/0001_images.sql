-- Up Migration

-- The rules for names, kept in the database too so rows written with plain SQL obey them as well.
-- A label becomes a folder name in an ImageFolder export: no slashes, no control characters,
-- not "." or "..", no blanks at either end.
CREATE FUNCTION image_label_valid(label text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN label ~ '^[^/\\[:cntrl:]]{1,128}$' AND label !~ '^\s|\s$' AND label NOT IN ('.', '..');

CREATE FUNCTION image_tags_valid(tags text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN cardinality(tags) <= 32
  AND array_position(tags, NULL) IS NULL
  AND array_to_string(tags, ',') ~ '^([a-z0-9][a-z0-9._:-]{0,63}(,|$))*$';

-- One row per image in a data set. The bytes live on the volume under their SHA-256; the same
-- content may be in several data sets (one file, several rows) but only once per data set.
CREATE TABLE images (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  sha256 text NOT NULL CONSTRAINT images_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  dataset text NOT NULL CONSTRAINT images_dataset_check CHECK (dataset ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  label text CONSTRAINT images_label_check CHECK (image_label_valid(label)),
  split text CONSTRAINT images_split_check CHECK (split IN ('train', 'test', 'val')),
  tags text[] NOT NULL DEFAULT '{}' CONSTRAINT images_tags_check CHECK (image_tags_valid(tags)),
  format text NOT NULL CONSTRAINT images_format_check CHECK (format IN ('jpeg', 'png', 'webp', 'gif', 'tiff', 'avif')),
  width integer NOT NULL CONSTRAINT images_width_check CHECK (width > 0),
  height integer NOT NULL CONSTRAINT images_height_check CHECK (height > 0),
  channels smallint NOT NULL CONSTRAINT images_channels_check CHECK (channels BETWEEN 1 AND 4),
  bytes bigint NOT NULL CONSTRAINT images_bytes_check CHECK (bytes > 0),
  original_name text CONSTRAINT images_original_name_check CHECK (length(original_name) <= 255),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT images_dataset_sha256_key UNIQUE (dataset, sha256)
);

-- A trigger rather than the API sets updated_at, so changes made with plain SQL are dated too
CREATE FUNCTION images_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TRIGGER images_touch BEFORE UPDATE ON images
  FOR EACH ROW EXECUTE FUNCTION images_touch();

-- Keyset pages (ORDER BY id) for each filter the list takes; ids are time-ordered (UUIDv7), so
-- these walk the newest-last order without sorting
CREATE INDEX images_dataset_id_idx ON images (dataset, id);
CREATE INDEX images_dataset_label_id_idx ON images (dataset, label, id);
CREATE INDEX images_dataset_split_id_idx ON images (dataset, split, id);
CREATE INDEX images_label_id_idx ON images (label, id);
CREATE INDEX images_tags_idx ON images USING gin (tags);
-- "does any row still point at this file?", asked on every delete and by the sweep
CREATE INDEX images_sha256_idx ON images (sha256);

-- Data set imports: one row per job, its counters advanced in the same transaction as each batch
-- of rows, so `processed` is always exactly where a resumed job picks up.
CREATE TABLE import_jobs (
  id uuid PRIMARY KEY,
  dataset text NOT NULL CONSTRAINT import_jobs_dataset_check CHECK (dataset ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  split text CONSTRAINT import_jobs_split_check CHECK (split IN ('train', 'test', 'val')),
  format text CONSTRAINT import_jobs_format_check CHECK (format IN ('idx', 'cifar10', 'imagefolder')),
  status text NOT NULL DEFAULT 'queued'
    CONSTRAINT import_jobs_status_check CHECK (status IN ('queued', 'running', 'completed', 'failed', 'interrupted')),
  -- the uploaded files as saved on the volume: [{ "name": ..., "path": ..., "bytes": ... }]
  files jsonb NOT NULL,
  total integer,
  processed integer NOT NULL DEFAULT 0,
  imported integer NOT NULL DEFAULT 0,
  duplicates integer NOT NULL DEFAULT 0,
  failed integer NOT NULL DEFAULT 0,
  -- where a resumed run starts reading: the source position after the last committed batch
  next_index integer NOT NULL DEFAULT 0,
  -- the first few records that could not be imported: [{ "record": ..., "message": ... }]
  errors jsonb NOT NULL DEFAULT '[]',
  message text,
  attempts integer NOT NULL DEFAULT 0,
  -- which process runs the job and when it last said so; a stale heartbeat means it died
  owner text,
  heartbeat_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);

CREATE INDEX import_jobs_queued_idx ON import_jobs (created_at) WHERE status = 'queued';
CREATE INDEX import_jobs_running_idx ON import_jobs (heartbeat_at) WHERE status = 'running';

-- Down Migration

DROP TABLE import_jobs;
DROP TABLE images;
DROP FUNCTION images_touch();
DROP FUNCTION image_tags_valid(text[]);
DROP FUNCTION image_label_valid(text);
