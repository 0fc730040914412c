-- Up Migration

-- Which seed sets were loaded: a starter joke that someone deleted stays deleted on the next start
CREATE TABLE seed_history (
  name text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration

DROP TABLE seed_history;
