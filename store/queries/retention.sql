-- Retention of the monthly partitions of the archive (events) and the outbox; run as the owner.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- create_partitions: month partitions first_month..last_month of each table (by its key column)
SELECT create_month_partitions(parent, key, :first_month, :last_month)
FROM unnest(:parents::text[], :keys::text[]) AS t (parent, key);

-- list_months: the months that have a partition of this table (the default one aside)
SELECT to_date(substr(c.relname, length(:parent::text) + 2), 'YYYY_MM') AS month
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = :parent::regclass AND c.relname ~ '_\d{4}_\d{2}$'
ORDER BY month;

-- month_rows: a month's rows as JSON lines
SELECT month_rows(:parent, :month) AS line;

-- month_summary: a month's row count and checksum
SELECT rows, checksum FROM month_summary(:parent, :month);

-- drop_month: drop a month's partition if it still matches its verified export
SELECT drop_month_partition(:parent, :month, :rows, :checksum);

-- unsent_in_month: outbox messages of a month not yet published (such a month is kept)
SELECT count(*) FROM outbox
WHERE created_at >= :month::date::timestamp AT TIME ZONE 'UTC'
  AND created_at < (:month::date + interval '1 month')::timestamp AT TIME ZONE 'UTC'
  AND sent_at IS NULL;

-- restore_events: put exported archive rows back (JSON lines of an export); rows present are kept,
-- their ids are known again (they may have been forgotten since: forget_event_ids), and search by
-- customer learns their orders' terms from the bodies (0022)
WITH restored AS (
    INSERT INTO events SELECT r.* FROM unnest(:lines::jsonb[]) AS l,
        LATERAL jsonb_populate_record(NULL::events, l) AS r
    ON CONFLICT DO NOTHING
    RETURNING event_id, applied_at, order_id, outcome, body
), customers AS (
    INSERT INTO order_customers (term, order_id)
    SELECT DISTINCT t.term, r.order_id
    FROM restored r CROSS JOIN LATERAL order_customer_terms(r.body) AS t
    WHERE r.order_id IS NOT NULL AND r.outcome IN ('applied', 'duplicate', 'stale', 'other_mode')
    ON CONFLICT DO NOTHING
)
INSERT INTO event_ids (event_id, archived_at) SELECT event_id, applied_at FROM restored
ON CONFLICT (event_id) DO NOTHING;

-- forget_event_ids: up to :limit ids archived before a time whose archived row is gone (its month
-- pruned); how many were forgotten. A resend of one is then archived again, and the order's
-- rules (stale, duplicate) and the ledger's business keys keep it from moving money twice.
WITH old AS (
    SELECT i.event_id FROM event_ids i
    WHERE i.archived_at < :before::timestamptz
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = i.event_id)
    LIMIT :limit
), gone AS (
    DELETE FROM event_ids i USING old WHERE i.event_id = old.event_id RETURNING 1
)
SELECT count(*) FROM gone;

-- restore_outbox: put exported outbox rows back (JSON lines of an export)
INSERT INTO outbox SELECT r.* FROM unnest(:lines::jsonb[]) AS l,
    LATERAL jsonb_populate_record(NULL::outbox, l) AS r
ON CONFLICT DO NOTHING;
