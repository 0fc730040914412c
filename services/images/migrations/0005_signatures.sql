-- Up Migration

-- Near-duplicates by candidates and verification (docs/decisions/0111 and 0112). The worker keeps
-- each image's signature: four 64-bit perceptual hashes and two 32x32 greyscale views, packed (see
-- analysis/signature.ts). The hashes are cut into 16-bit bands, and each band value, tagged with
-- its hash and band, is a key: images sharing a key are candidates, verified on their views. An
-- image is signed first (signature and signed_xid set, status still NULL), then paired and marked
-- done. signed_xid is the signing transaction: a worker's candidate index catches up with what
-- other replicas signed by reading the rows of transactions its last read could not see yet.
ALTER TABLE images ADD COLUMN signature bytea, ADD COLUMN signed_xid xid8;

CREATE TABLE image_keys (
  key bigint NOT NULL,
  image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  PRIMARY KEY (key, image_id)
);
-- the cascade from a deleted image, and a re-analysis replacing an image's keys
CREATE INDEX image_keys_image_idx ON image_keys (image_id);

-- Verified near-duplicates within a data set, as the worker found them: each pair twice, once
-- from each side, so an image's pairs and a page of the leak report are one index range each.
-- Kept from a score of 0.9 (the lowest threshold a request may set); distance is in dHash bits.
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

-- done implies signed; a failed image has no signature; signed and not yet done is the step between
ALTER TABLE images ADD CONSTRAINT images_signature_check CHECK (
  (analysis_status = 'done' AND signature IS NOT NULL)
  OR (analysis_status = 'failed' AND signature IS NULL)
  OR analysis_status IS NULL
);

-- the worker's index catching up with what other replicas signed: by signing transaction
CREATE INDEX images_signed_idx ON images (dataset, signed_xid) WHERE signature IS NOT NULL;

-- Down Migration

DROP INDEX images_signed_idx;
ALTER TABLE images DROP CONSTRAINT images_signature_check;
DROP TABLE image_pairs;
DROP TABLE image_keys;
ALTER TABLE images DROP COLUMN signature, DROP COLUMN signed_xid;
