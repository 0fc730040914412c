-- Up Migration

-- The transactional outbox: one row per change to an image, written in the same transaction as the
-- change, so an event exists exactly when its change committed. The relay publishes unsent rows to
-- NATS JetStream and stamps sent_at after the PubAck; sent rows are pruned after a retention period.
CREATE TABLE outbox (
  -- the order of events; per image it is also the commit order, because every writer takes the
  -- image row's lock (INSERT, UPDATE or DELETE) before it inserts the event
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- the event id (UUIDv7), sent as Nats-Msg-Id so JetStream drops a republished copy
  id uuid NOT NULL CONSTRAINT outbox_id_key UNIQUE,
  type text NOT NULL CONSTRAINT outbox_type_check CHECK (type IN ('created', 'updated', 'deleted')),
  image_id uuid NOT NULL,
  dataset text NOT NULL,
  -- the image as GET /images/:id served it when the change committed (its last state for deleted)
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz
);

-- what the relay reads: unsent rows in order
CREATE INDEX outbox_unsent_idx ON outbox (seq) WHERE sent_at IS NULL;
-- "is an earlier event of this image still unsent?", asked for every row the relay takes
CREATE INDEX outbox_unsent_image_idx ON outbox (image_id, seq) WHERE sent_at IS NULL;
-- what pruning deletes: sent rows, oldest first
CREATE INDEX outbox_sent_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Down Migration

DROP TABLE outbox;
