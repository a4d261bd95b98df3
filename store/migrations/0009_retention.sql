-- Retention: the archive (events) and the outbox partitioned by month, so that a month leaves
-- whole (`archive prune`: exported, verified, then its partition dropped), never row by row; and
-- event_ids, every event id ever archived, so that Conekta resending an event whose body was
-- pruned is still recognised as a duplicate. Existing rows are kept.

-- The dedupe key of the archive (a partitioned table cannot hold a unique key without its
-- partition key). About 60 bytes per event; never pruned.
CREATE TABLE event_ids (
    event_id     text PRIMARY KEY,
    archived_at  timestamptz NOT NULL DEFAULT clock_timestamp()  -- the month that held its body
);

-- Monthly partitions (UTC) of `parent`, partitioned by RANGE (key), from first_month through
-- last_month; rows that waited in the default partition for a month move into it. Returns the
-- partitions created. Idempotent; run by `migrate` and `archive prune` to stay a year ahead.
CREATE FUNCTION create_month_partitions(parent text, key text, first_month date, last_month date)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', first_month);
    part  text;
    lo    timestamptz;
    hi    timestamptz;
BEGIN
    WHILE month <= last_month LOOP
        part := format('%s_%s', parent, to_char(month, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            lo := month::timestamp AT TIME ZONE 'UTC';
            hi := (month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           part, parent);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *)'
                           ' INSERT INTO %I SELECT * FROM moved',
                           parent || '_default', key, key, part) USING lo, hi;
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           parent, part, lo, hi);
            RETURN NEXT part;
        END IF;
        month := month + interval '1 month';
    END LOOP;
END $$;

-- events: by applied_at (when archived: the database's clock, so always a current month).
ALTER TABLE events RENAME TO events_unpartitioned;
CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (applied_at);
-- Anything no month partition takes (clock skew, partitions not made ahead) waits here, safe;
-- create_month_partitions moves it out.
CREATE TABLE events_default PARTITION OF events DEFAULT;
SELECT create_month_partitions(
    'events', 'applied_at',
    coalesce((SELECT min(applied_at) FROM events_unpartitioned), now())::date,
    (now() + interval '12 months')::date);
INSERT INTO event_ids (event_id, archived_at) SELECT event_id, applied_at FROM events_unpartitioned;
INSERT INTO events SELECT * FROM events_unpartitioned;
DROP TABLE events_unpartitioned;
ALTER TABLE events ADD PRIMARY KEY (event_id, applied_at);
ALTER TABLE events ADD CONSTRAINT events_outcome_fkey
    FOREIGN KEY (outcome) REFERENCES event_outcomes (name);
CREATE INDEX events_order_id_idx ON events (order_id);
CREATE INDEX events_created_at_idx ON events (created_at);

-- outbox: by created_at. message_id is no longer unique by constraint (it would need the
-- partition key): insert_outbox skips ids already present, under the orders' row locks.
ALTER TABLE outbox RENAME TO outbox_unpartitioned;
ALTER SEQUENCE outbox_id_seq OWNED BY NONE;
CREATE TABLE outbox (LIKE outbox_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (created_at);
CREATE TABLE outbox_default PARTITION OF outbox DEFAULT;
SELECT create_month_partitions(
    'outbox', 'created_at',
    coalesce((SELECT min(created_at) FROM outbox_unpartitioned), now())::date,
    (now() + interval '12 months')::date);
INSERT INTO outbox SELECT * FROM outbox_unpartitioned;
DROP TABLE outbox_unpartitioned;
ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id;
ALTER TABLE outbox ADD PRIMARY KEY (id, created_at);
CREATE INDEX outbox_message_id_idx ON outbox (message_id);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

-- The partition of `parent` holding `month`, by name (create_month_partitions names them).
CREATE FUNCTION month_partition(parent text, month date) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s_%s', parent, to_char(month, 'YYYY_MM'))
$$;

-- A month's rows as JSON lines (bytea as "\x…" hex): the export format of `archive prune`.
CREATE FUNCTION month_rows(parent text, month date) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT row_to_json(t)::text FROM %I t',
                                month_partition(parent, month));
END $$;

-- Rows and an order-independent checksum of a month's JSON lines (sum of the first 60 bits of
-- each line's md5): what an export must match before its month is dropped.
CREATE FUNCTION month_summary(parent text, month date, OUT rows bigint, OUT checksum numeric)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*), coalesce(sum((''x'' || substr(md5(row_to_json(t)::text), 1, 15))'
                   '::bit(60)::bigint), 0) FROM %I t', month_partition(parent, month))
        INTO rows, checksum;
END $$;

-- Drop a month's partition, provided it still holds exactly what was exported and verified
-- (checked under an exclusive lock, so nothing changes in between).
CREATE FUNCTION drop_month_partition(parent text, month date, expected_rows bigint,
                                     expected_checksum numeric) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part text := month_partition(parent, month);
    now_rows bigint;
    now_checksum numeric;
BEGIN
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', part);
    SELECT * INTO now_rows, now_checksum FROM month_summary(parent, month);
    IF now_rows <> expected_rows OR now_checksum <> expected_checksum THEN
        RAISE EXCEPTION '% changed since it was exported (% rows, expected %)',
            part, now_rows, expected_rows USING ERRCODE = 'check_violation';
    END IF;
    EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent, part);
    EXECUTE format('DROP TABLE %I', part);
END $$;

-- Maintenance runs as the owner only (the runtime role could not drop anyway; say so).
REVOKE EXECUTE ON FUNCTION create_month_partitions(text, text, date, date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION month_rows(text, date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION month_summary(text, date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION drop_month_partition(text, date, bigint, numeric) FROM PUBLIC;
