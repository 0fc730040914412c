-- Up Migration

-- Near-duplicates by candidates and verification (docs/decisions/0111 and 0112). The worker keeps
-- each image's signature: four 64-bit perceptual hashes and two 32x32 greyscale views, packed (see
-- analysis/signature.ts); it finds candidates in memory and verifies them on the views. An image
-- is signed first (a row here, its status still NULL), then paired and marked done. signed_xid is
-- the signing transaction: a worker's candidate index catches up with what other replicas signed
-- by reading the rows of transactions its last read could not see yet. A table of its own, so the
-- images row stays narrow when it is updated; toast_tuple_target keeps the 2 KB rows inline and
-- uncompressed (the views do not compress).
CREATE TABLE image_signatures (
  image_id uuid PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
  dataset text NOT NULL,
  signed_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  signature bytea NOT NULL
) WITH (toast_tuple_target = 4080);
ALTER TABLE image_signatures ALTER COLUMN signature SET STORAGE MAIN;
-- the worker's index loading a data set and catching up with what other replicas signed
CREATE INDEX image_signatures_dataset_idx ON image_signatures (dataset, signed_xid);

-- Verified near-duplicates within a data set, as the worker found them: each pair twice, once
-- from each side, so an image's pairs and a page of the leak report are one index range each.
-- Kept from a score of 0.9 (the lowest threshold a request may set); distance is in hash bits.
CREATE TABLE image_pairs (
  dataset text NOT NULL,
  image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  other_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  score real NOT NULL CONSTRAINT image_pairs_score_check CHECK (score >= 0 AND score <= 1),
  distance smallint NOT NULL,
  PRIMARY KEY (image_id, other_id),
  CONSTRAINT image_pairs_other_check CHECK (image_id <> other_id)
);
-- the leak report's pages: one data set's pairs in (image, other) order
CREATE INDEX image_pairs_dataset_idx ON image_pairs (dataset, image_id, other_id);
-- the cascade from a deleted image on the other side
CREATE INDEX image_pairs_other_idx ON image_pairs (other_id);

-- Images analysed before signatures existed are analysed again: their marks go, so the worker's
-- catch-up takes them as images whose created event never reached it
DELETE FROM processed_events p USING images i WHERE p.event_id = i.id AND i.analysis_status = 'done';
UPDATE images SET analysis_status = NULL, phash = NULL, analysed_at = NULL WHERE analysis_status = 'done';

-- Down Migration

DROP TABLE image_pairs;
DROP TABLE image_signatures;
