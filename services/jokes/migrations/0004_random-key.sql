-- Up Migration

-- A uniform random number per row: a random pick is an index probe for the first key at or after
-- a random point, never a scan or sort of the table.
ALTER TABLE jokes ADD COLUMN random_key double precision NOT NULL DEFAULT random();

CREATE INDEX jokes_random_key_idx ON jokes (random_key);
-- The default (safe) pick: only unflagged rows are in this index, so no probe lands on a flagged one
CREATE INDEX jokes_safe_random_key_idx ON jokes (random_key) WHERE flags = '{}';
CREATE INDEX jokes_category_random_key_idx ON jokes (category, random_key);

-- Down Migration

DROP INDEX jokes_category_random_key_idx;
DROP INDEX jokes_safe_random_key_idx;
DROP INDEX jokes_random_key_idx;
ALTER TABLE jokes DROP COLUMN random_key;
