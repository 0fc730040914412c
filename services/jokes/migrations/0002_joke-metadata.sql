-- Up Migration

-- Every column has a default, so INSERT INTO jokes (joke) VALUES ('...') still works and the row
-- shows up in the API at once.
ALTER TABLE jokes
  ADD COLUMN category text NOT NULL DEFAULT 'misc'
    CONSTRAINT jokes_category_check CHECK (category ~ '^[a-z][a-z0-9-]{0,31}$'),
  ADD COLUMN flags text[] NOT NULL DEFAULT '{}'
    CONSTRAINT jokes_flags_check
      CHECK (flags <@ ARRAY['nsfw', 'religious', 'political', 'racist', 'sexist', 'explicit']),
  ADD COLUMN lang text NOT NULL DEFAULT 'en'
    CONSTRAINT jokes_lang_check CHECK (lang ~ '^[a-z]{2}$'),
  ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- A trigger rather than the API sets updated_at, so changes made with plain SQL are dated too
CREATE FUNCTION jokes_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TRIGGER jokes_touch BEFORE UPDATE ON jokes
  FOR EACH ROW EXECUTE FUNCTION jokes_touch();

-- Keyset pages filtered by category walk this instead of the whole primary key
CREATE INDEX jokes_category_id_idx ON jokes (category, id);

-- Down Migration

DROP INDEX jokes_category_id_idx;
DROP TRIGGER jokes_touch ON jokes;
DROP FUNCTION jokes_touch();
ALTER TABLE jokes
  DROP COLUMN updated_at,
  DROP COLUMN created_at,
  DROP COLUMN lang,
  DROP COLUMN flags,
  DROP COLUMN category;
