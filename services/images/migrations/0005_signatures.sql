-- Up Migration

-- Near-duplicates by candidates and verification (docs/decisions/0111). The worker keeps each
-- image's signature: four 64-bit perceptual hashes and two 32x32 greyscale views, packed (see
-- analysis/signature.ts). The hashes are cut into 16-bit bands, and each band value, tagged with
-- its hash and band, is a key: images sharing a key are candidates, verified on their views.
ALTER TABLE images ADD COLUMN signature bytea;

CREATE TABLE image_keys (
  key bigint NOT NULL,
  image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  PRIMARY KEY (key, image_id)
);
-- the cascade from a deleted image, and a re-analysis replacing an image's keys
CREATE INDEX image_keys_image_idx ON image_keys (image_id);

-- Images analysed before signatures existed are analysed again: their marks go, so the worker's
-- catch-up takes them as images whose created event never reached it
DELETE FROM processed_events p USING images i WHERE p.event_id = i.id AND i.analysis_status = 'done';
UPDATE images SET analysis_status = NULL, phash = NULL, analysed_at = NULL WHERE analysis_status = 'done';

ALTER TABLE images ADD CONSTRAINT images_signature_check CHECK ((analysis_status = 'done') = (signature IS NOT NULL));

-- Down Migration

ALTER TABLE images DROP CONSTRAINT images_signature_check;
DROP TABLE image_keys;
ALTER TABLE images DROP COLUMN signature;
