-- 0009 rebuilt `events` as a partitioned table, which dropped the console's index on the time an
-- event was received (0008); recreate it on the partitioned table (it cascades to partitions).
CREATE INDEX IF NOT EXISTS events_applied_at_idx ON events (applied_at);
