-- Up Migration

-- What makes two jokes "the same": case, apostrophes, spaces and punctuation do not count.
-- Letters are never removed, so text in any script (and a database in the C locale) stays distinct.
CREATE FUNCTION joke_normalize(joke text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN btrim(regexp_replace(
  regexp_replace(lower(joke), '[''`´‘’]', '', 'g'),
  '[[:space:][:punct:]“”«»„‚—–…¿¡·]+', ' ', 'g'));

-- A fixed-size key for the unique index: btree entries cannot hold 2,000 characters of any script
CREATE FUNCTION joke_fingerprint(joke text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN md5(joke_normalize(joke))::uuid;

-- The stemming rules for a joke's language; 'simple' (no stemming, no stop words) for the rest
CREATE FUNCTION joke_search_config(lang text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE lang
  WHEN 'da' THEN 'danish'::regconfig
  WHEN 'de' THEN 'german'::regconfig
  WHEN 'en' THEN 'english'::regconfig
  WHEN 'es' THEN 'spanish'::regconfig
  WHEN 'fi' THEN 'finnish'::regconfig
  WHEN 'fr' THEN 'french'::regconfig
  WHEN 'hu' THEN 'hungarian'::regconfig
  WHEN 'it' THEN 'italian'::regconfig
  WHEN 'nl' THEN 'dutch'::regconfig
  WHEN 'no' THEN 'norwegian'::regconfig
  WHEN 'pt' THEN 'portuguese'::regconfig
  WHEN 'ro' THEN 'romanian'::regconfig
  WHEN 'ru' THEN 'russian'::regconfig
  WHEN 'sv' THEN 'swedish'::regconfig
  WHEN 'tr' THEN 'turkish'::regconfig
  ELSE 'simple'::regconfig
END;

-- The searchable words: stemmed by the joke's language, and for languages other than English also
-- as written, so a search that names no language (parsed as English and as written) finds them
CREATE FUNCTION joke_document(lang text, joke text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
  WHEN joke_search_config(lang) IN ('english'::regconfig, 'simple'::regconfig)
    THEN to_tsvector(joke_search_config(lang), joke)
  ELSE to_tsvector(joke_search_config(lang), joke) || to_tsvector('simple'::regconfig, joke)
END;

-- Generated columns: computed by PostgreSQL on every write, whoever writes
ALTER TABLE jokes
  ADD COLUMN fingerprint uuid GENERATED ALWAYS AS (joke_fingerprint(joke)) STORED,
  ADD COLUMN document tsvector GENERATED ALWAYS AS (joke_document(lang, joke)) STORED;

-- Two writers posting the same joke at once: the index lets exactly one of them in
CREATE UNIQUE INDEX jokes_fingerprint_key ON jokes (fingerprint);
CREATE INDEX jokes_document_idx ON jokes USING gin (document);

-- Down Migration

DROP INDEX jokes_document_idx;
DROP INDEX jokes_fingerprint_key;
ALTER TABLE jokes DROP COLUMN document, DROP COLUMN fingerprint;
DROP FUNCTION joke_document(text, text);
DROP FUNCTION joke_search_config(text);
DROP FUNCTION joke_fingerprint(text);
DROP FUNCTION joke_normalize(text);
