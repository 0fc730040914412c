-- Up Migration

-- What the images-worker works out for each image: a 64-bit perceptual hash (dHash) for finding
-- near-duplicates, or why the image could not be decoded. NULL status means not analysed yet.
-- Nullable columns without a default: adding them rewrites nothing.
ALTER TABLE images
  ADD COLUMN phash bigint,
  ADD COLUMN analysis_status text CONSTRAINT images_analysis_status_check CHECK (analysis_status IN ('done', 'failed')),
  ADD COLUMN analysis_error text CONSTRAINT images_analysis_error_check CHECK (length(analysis_error) <= 1000),
  ADD COLUMN analysed_at timestamptz,
  ADD CONSTRAINT images_analysis_check CHECK (
    (analysis_status = 'done' AND phash IS NOT NULL AND analysis_error IS NULL)
    OR (analysis_status = 'failed' AND phash IS NULL AND analysis_error IS NOT NULL)
    OR (analysis_status IS NULL AND phash IS NULL AND analysis_error IS NULL)
  );

-- updated_at dates changes to what an image is and how it is labelled; the worker's findings are
-- dated by analysed_at and must not make the image look edited
DROP TRIGGER images_touch ON images;
CREATE TRIGGER images_touch BEFORE UPDATE OF sha256, dataset, label, split, tags, format, width, height, channels, bytes, original_name
  ON images FOR EACH ROW EXECUTE FUNCTION images_touch();

-- Near-duplicate search by multi-index hashing. The hash is cut into four 16-bit bands, each
-- indexed. Two hashes at Hamming distance d differ in at most floor(d / 4) bits in at least one
-- band (pigeonhole), so the candidates are the rows with some band within that many bits of the
-- probe's band: 1 value per band up to d = 3, 17 up to 7, 137 up to 11. The exact distance is
-- then checked on those candidates only. The data set is the second key column, so a search
-- within one data set and one across all use the same four indexes. Not partial (WHERE phash IS
-- NOT NULL): the planner only keeps statistics on the expressions of whole-table indexes, and
-- without them it guesses that a band value matches hundreds of rows and scans instead.
CREATE INDEX images_phash_band0_idx ON images (((phash >> 48) & 65535), dataset);
CREATE INDEX images_phash_band1_idx ON images (((phash >> 32) & 65535), dataset);
CREATE INDEX images_phash_band2_idx ON images (((phash >> 16) & 65535), dataset);
CREATE INDEX images_phash_band3_idx ON images ((phash & 65535), dataset);

-- Images still waiting for the worker, counted per data set (the leaks list is complete once there
-- are none); small, since rows leave it as they are analysed
CREATE INDEX images_unanalysed_idx ON images (dataset) WHERE analysis_status IS NULL;

-- The 16-bit masks with at most 2 bits set: XORed with a band they give every band value within
-- that many bits of it
CREATE TABLE image_hash_masks (
  mask bigint PRIMARY KEY,
  weight smallint NOT NULL
);
INSERT INTO image_hash_masks (mask, weight)
SELECT m, bit_count(m::bit(16))
FROM generate_series(0, 65535) AS m
WHERE bit_count(m::bit(16)) <= 2;

-- Every 16-bit value within `radius` bits of `band` (radius 0 to 2)
CREATE FUNCTION image_hash_band_ball(band bigint, radius integer) RETURNS bigint[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE
RETURN ARRAY(SELECT band # mask FROM image_hash_masks WHERE weight <= radius);

-- Which events a consumer has applied: written in the same transaction as the effect, so a message
-- delivered again (a redelivery after a lost ack, or a republished duplicate) is acked without
-- applying its effect twice
CREATE TABLE processed_events (
  consumer text NOT NULL,
  event_id uuid NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

-- Down Migration

DROP TABLE processed_events;
DROP FUNCTION image_hash_band_ball(bigint, integer);
DROP TABLE image_hash_masks;
DROP INDEX images_unanalysed_idx;
DROP INDEX images_phash_band3_idx;
DROP INDEX images_phash_band2_idx;
DROP INDEX images_phash_band1_idx;
DROP INDEX images_phash_band0_idx;
DROP TRIGGER images_touch ON images;
CREATE TRIGGER images_touch BEFORE UPDATE ON images
  FOR EACH ROW EXECUTE FUNCTION images_touch();
ALTER TABLE images
  DROP CONSTRAINT images_analysis_check,
  DROP COLUMN analysed_at,
  DROP COLUMN analysis_error,
  DROP COLUMN analysis_status,
  DROP COLUMN phash;
