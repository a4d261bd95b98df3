-- The archive of raw events: every event once, with its outcome.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- archived_event_ids: which of these event ids were ever archived (their bodies may be pruned);
-- one primary-key lookup per id (as lock_orders: `= ANY(...)` turns into a seq scan on young stats)
SELECT x.event_id
FROM unnest(:ids::text[]) AS wanted (id)
CROSS JOIN LATERAL (SELECT event_id FROM event_ids WHERE event_id = wanted.id
                    OFFSET 0) AS x;  -- OFFSET 0: kept a lookup, not flattened into a join

-- archive_events: store raw events with their outcome (applied_at: now, late in the transaction);
-- an id already archived, even one whose body was pruned, is left as it is, except that a purge
-- tombstone takes the outcome of a replay that applies the event on purpose, an event archived
-- `ignored` (no handler then) the outcome of its replay, and an `invalid` one the outcome (and
-- reason) of being judged again (events invalid replay); a resend judged `invalid` leaves a purge
-- tombstone as it is (purged invalid events stay refused); a revived row takes the provenance of
-- what revived it (a replay verified it again); search by customer learns the terms of each
-- order event archived or revived (customer_info: the body's data.object.customer_info, from the
-- writer, which parsed the body already: 0022)
WITH incoming AS (
    SELECT DISTINCT ON (event_id) *
    FROM unnest(:event_id::text[], :type::text[], :order_id::text[], :livemode::boolean[],
                :created_at::timestamptz[], :received_at::timestamptz[], :outcome::text[],
                :body::bytea[], :original_id::text[], :reason::text[], :request::jsonb[],
                :provenance::text[], :customer_info::jsonb[])
         AS i (event_id, type, order_id, livemode, created_at, received_at, outcome, body,
               original_id, reason, request, provenance, customer_info)
), settled_failures AS (  -- no longer in flight (store/queries/event_failures.sql)
    DELETE FROM event_failures f USING incoming i WHERE f.event_id = i.event_id
), new_ids AS (
    INSERT INTO event_ids (event_id) SELECT event_id FROM incoming
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, archived_at
), revived AS (
    UPDATE events e
    SET outcome = i.outcome, order_id = coalesce(e.order_id, i.order_id), reason = i.reason,
        applied_at = clock_timestamp(), provenance = i.provenance
    FROM incoming i
    WHERE e.event_id = i.event_id
      -- An id new to event_ids has no row to revive (an id is forgotten only after its row is
      -- gone, 0013): a batch of new events looks nothing up, whatever plan the statement got.
      AND i.event_id NOT IN (SELECT event_id FROM new_ids)
      AND ((e.outcome IN ('purged', 'ignored')
            AND i.outcome NOT IN ('purged', 'ignored', 'invalid'))
           OR (e.outcome = 'invalid' AND i.outcome <> 'redelivered'))
    RETURNING e.event_id, e.order_id
), customers AS (
    INSERT INTO order_customers (term, order_id)
    SELECT DISTINCT t.term, coalesce(r.order_id, i.order_id)
    FROM incoming i
    LEFT JOIN new_ids n USING (event_id)
    LEFT JOIN revived r USING (event_id)
    CROSS JOIN LATERAL customer_terms(i.customer_info) AS t
    WHERE (n.event_id IS NOT NULL OR r.event_id IS NOT NULL)
      AND coalesce(r.order_id, i.order_id) IS NOT NULL
      AND i.outcome IN ('applied', 'duplicate', 'stale', 'other_mode')
    ON CONFLICT DO NOTHING
)
INSERT INTO events (event_id, type, order_id, livemode, created_at, received_at, outcome, body,
                    original_id, reason, request, provenance, applied_at)
SELECT i.event_id, i.type, i.order_id, i.livemode, i.created_at, i.received_at, i.outcome, i.body,
       i.original_id, i.reason, i.request, i.provenance, n.archived_at
FROM incoming i JOIN new_ids n USING (event_id);

-- archive_tombstone: a purged dead letter's event, with who and why (kept if already archived)
WITH new_id AS (
    INSERT INTO event_ids (event_id) VALUES (:event_id::text)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING archived_at
)
INSERT INTO events (event_id, type, order_id, livemode, created_at, received_at, outcome, body,
                    original_id, reason, request, note, applied_at)
SELECT :event_id::text, :type::text, :order_id::text, :livemode::boolean,
       :created_at::timestamptz, :received_at::timestamptz, 'purged', :body::bytea,
       :original_id::text, :reason::text, :request::jsonb, :note::text, archived_at
FROM new_id;

-- get_event: one archived event, whole (with its webhook request, when recorded)
SELECT event_id, original_id, type, order_id, livemode, created_at, received_at, applied_at,
       outcome, reason, note, request, body
FROM events WHERE event_id = :event_id;

-- list_events: archived events of one outcome (no bodies), in Conekta's order, a page after the
-- (created_at, id) cursor
SELECT event_id, original_id, type, order_id, livemode, created_at, received_at, applied_at,
       outcome, reason
FROM events
WHERE outcome = :outcome
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (created_at, event_id) > (:after_created_at::timestamptz, :after_event_id::text)
ORDER BY created_at, event_id
LIMIT :limit;

-- invalid_events: `invalid` events of a selection (these keys, a type, a created_at window, or
-- every one without any), a page after the (created_at, id) cursor, in Conekta's order; bodies
-- only when asked for (preview and replay judge them, a listing does not)
SELECT event_id, original_id, type, order_id, livemode, created_at, received_at, applied_at,
       reason, CASE WHEN :bodies::boolean THEN body END AS body,
       CASE WHEN :bodies::boolean THEN request END AS request, provenance
FROM events
WHERE outcome = 'invalid'
  AND (cardinality(:ids::text[]) = 0 OR event_id = ANY(:ids))
  AND (:event_type::text IS NULL OR type = :event_type)
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (:until::timestamptz IS NULL OR created_at < :until)
  AND (created_at, event_id) > (:after_created_at::timestamptz, :after_event_id::text)
ORDER BY created_at, event_id
LIMIT :limit;

-- count_invalid_events: how many `invalid` events a selection matches now
SELECT count(*) FROM events
WHERE outcome = 'invalid'
  AND (cardinality(:ids::text[]) = 0 OR event_id = ANY(:ids))
  AND (:event_type::text IS NULL OR type = :event_type)
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (:until::timestamptz IS NULL OR created_at < :until);

-- lock_invalid_events: the `invalid` events a selection matches (no bodies), locked until the
-- transaction ends (a purge: what it counted is what it purges)
SELECT event_id, original_id, type, order_id, livemode, created_at, received_at, applied_at,
       reason
FROM events
WHERE outcome = 'invalid'
  AND (cardinality(:ids::text[]) = 0 OR event_id = ANY(:ids))
  AND (:event_type::text IS NULL OR type = :event_type)
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (:until::timestamptz IS NULL OR created_at < :until)
ORDER BY created_at, event_id
FOR UPDATE;

-- purge_invalid_events: `invalid` events become purge tombstones (outcome `purged`, who and why in
-- the note); the body stays (store first), and a resend of the same id stays refused
UPDATE events SET outcome = 'purged', note = :note
WHERE outcome = 'invalid' AND event_id = ANY(:ids::text[]);

-- replay_events: archived events of handled types by filter, in Conekta's order, a page after the
-- (created_at, id) cursor
SELECT event_id, body, received_at, created_at, request, provenance FROM events
WHERE type = ANY(:handled_types::text[])
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (:until::timestamptz IS NULL OR created_at < :until)
  AND (:event_type::text IS NULL OR type = :event_type)
  AND (:order_id::text IS NULL OR order_id = :order_id)
  AND (:include_purged::boolean OR outcome <> 'purged')
  AND (created_at, event_id) > (:after_created_at::timestamptz, :after_event_id::text)
ORDER BY created_at, event_id
LIMIT :limit;
