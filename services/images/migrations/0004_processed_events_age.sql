-- Up Migration

-- What the worker's pruning reads: a consumer's applied events, oldest first. A row is only needed
-- while its event can still be delivered, so rows older than the stream keeps messages are removed.
CREATE INDEX processed_events_age_idx ON processed_events (consumer, processed_at);

-- Down Migration

DROP INDEX processed_events_age_idx;
