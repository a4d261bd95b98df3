-- The archive of raw events: every event once, with its outcome.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- archived_event_ids: which of these event ids are already in the archive
SELECT event_id FROM events WHERE event_id = ANY(:ids::text[]);

-- archive_events: store raw events with their outcome (applied_at: now, late in the transaction);
-- a purge tombstone takes the outcome of a replay that applies the event on purpose, and an
-- event archived `ignored` (no handler then) the outcome of its replay
INSERT INTO events (event_id, type, order_id, livemode, created_at, received_at, outcome, body,
                    original_id, reason, applied_at)
SELECT *, clock_timestamp()
FROM unnest(:event_id::text[], :type::text[], :order_id::text[], :livemode::boolean[],
            :created_at::timestamptz[], :received_at::timestamptz[], :outcome::text[],
            :body::bytea[], :original_id::text[], :reason::text[])
ON CONFLICT (event_id) DO UPDATE
SET outcome = EXCLUDED.outcome, order_id = coalesce(events.order_id, EXCLUDED.order_id),
    applied_at = EXCLUDED.applied_at
WHERE events.outcome IN ('purged', 'ignored') AND EXCLUDED.outcome NOT IN ('purged', 'ignored');

-- archive_tombstone: a purged dead letter's event, with who and why (kept if already archived)
INSERT INTO events (event_id, type, order_id, livemode, created_at, received_at, outcome, body,
                    original_id, reason, note)
VALUES (:event_id, :type, :order_id, :livemode, :created_at, :received_at, 'purged', :body,
        :original_id, :reason, :note)
ON CONFLICT (event_id) DO NOTHING;

-- get_event: one archived event, whole
SELECT event_id, original_id, type, order_id, livemode, created_at, received_at, applied_at,
       outcome, reason, note, body
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

-- invalid_events: `invalid` events by filter, whole, a page after the (created_at, id) cursor
SELECT event_id, body, received_at, created_at FROM events
WHERE outcome = 'invalid'
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (:until::timestamptz IS NULL OR created_at < :until)
  AND (created_at, event_id) > (:after_created_at::timestamptz, :after_event_id::text)
ORDER BY created_at, event_id
LIMIT :limit;

-- forget_invalid: drop `invalid` rows about to be judged again (in the same transaction)
DELETE FROM events WHERE event_id = ANY(:ids::text[]) AND outcome = 'invalid';

-- replay_events: archived events of handled types by filter, in Conekta's order, a page after the
-- (created_at, id) cursor
SELECT event_id, body, received_at, created_at FROM events
WHERE type = ANY(:handled_types::text[])
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (:until::timestamptz IS NULL OR created_at < :until)
  AND (:event_type::text IS NULL OR type = :event_type)
  AND (:order_id::text IS NULL OR order_id = :order_id)
  AND (:include_purged::boolean OR outcome <> 'purged')
  AND (created_at, event_id) > (:after_created_at::timestamptz, :after_event_id::text)
ORDER BY created_at, event_id
LIMIT :limit;
