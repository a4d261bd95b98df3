-- Dead letters, moved from conekta.dead-letters into Postgres: looking at them is a SELECT.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- insert_dead_letters: store dead letters; the same message failing again updates its open row;
-- they are no longer in flight (event_failures)
WITH settled_failures AS (
    DELETE FROM event_failures WHERE event_id = ANY(:message_id::text[])
)
INSERT INTO dead_letters (message_id, type, order_id, kind, reason, attempts, first_failed_at,
                          last_failed_at, source_queue, exchange, routing_key, headers, body)
SELECT * FROM unnest(:message_id::text[], :type::text[], :order_id::text[], :kind::text[],
                     :reason::text[], :attempts::integer[], :first_failed_at::timestamptz[],
                     :last_failed_at::timestamptz[], :source_queue::text[], :exchange::text[],
                     :routing_key::text[], :headers::jsonb[], :body::bytea[])
ON CONFLICT (message_id) WHERE status = 'dead' DO UPDATE SET
    kind = EXCLUDED.kind, reason = EXCLUDED.reason, attempts = EXCLUDED.attempts,
    last_failed_at = EXCLUDED.last_failed_at, headers = EXCLUDED.headers, dead_at = now();

-- list_dead_letters: open dead letters, oldest first, matching every filter given (NULL: any)
SELECT id, message_id, type, order_id, kind, reason, attempts, first_failed_at, last_failed_at,
       source_queue, dead_at
FROM dead_letters
WHERE status = 'dead'
  AND (:event_type::text IS NULL OR type = :event_type)
  AND (:kind::text IS NULL OR kind = :kind)
  AND (:order_id::text IS NULL OR order_id = :order_id)
ORDER BY id;

-- get_dead_letters: every row (open or settled) of a message id, newest first
SELECT * FROM dead_letters WHERE message_id = :message_id ORDER BY id DESC;

-- select_dead_letters: open dead letters by ids, all, or every filter given (type, kind, order);
-- locked for a replay or purge. No filter at all selects nothing.
SELECT * FROM dead_letters
WHERE status = 'dead'
  AND (:everything::boolean
       OR message_id = ANY(:ids::text[])
       OR (num_nonnulls(:event_type::text, :kind::text, :order_id::text) > 0
           AND (:event_type::text IS NULL OR type = :event_type)
           AND (:kind::text IS NULL OR kind = :kind)
           AND (:order_id::text IS NULL OR order_id = :order_id)))
ORDER BY id FOR UPDATE SKIP LOCKED;

-- settle_dead_letter: mark one dead letter replayed or purged, by whom and why
UPDATE dead_letters SET status = :status, settled_at = now(), settled_by = :actor,
                        settle_reason = :reason
WHERE id = :id AND status = 'dead';

-- dead_letter_count: open dead letters (the metric on-call alerts on)
SELECT count(*) FROM dead_letters WHERE status = 'dead';

-- dead_letter_bodies: open and purged dead letters with their bodies (stats count them per day)
SELECT status, type, body FROM dead_letters WHERE status IN ('dead', 'purged');

-- replayed_rows: the newest replayed row of each of these message ids (what a replay settled)
SELECT DISTINCT ON (message_id) id, message_id FROM dead_letters
WHERE message_id = ANY(:message_ids::text[]) AND status = 'replayed'
ORDER BY message_id, id DESC;

-- replay_outcomes: what came of replayed rows (by id): the event's archive outcome and whether
-- it was archived before the replay (a redelivery), and its dead letter opened after, if any
SELECT d.id, d.message_id, e.outcome, e.reason AS outcome_reason,
       coalesce(e.applied_at < d.settled_at, false) AS archived_before,
       again.kind AS again_kind, again.reason AS again_reason
FROM dead_letters d
LEFT JOIN LATERAL (SELECT outcome, reason, applied_at FROM events
                   WHERE event_id = d.message_id ORDER BY applied_at DESC LIMIT 1) e ON true
LEFT JOIN LATERAL (SELECT kind, reason FROM dead_letters x
                   WHERE x.message_id = d.message_id AND x.id > d.id
                   ORDER BY x.id DESC LIMIT 1) again ON true
WHERE d.id = ANY(:ids::bigint[])
ORDER BY d.id;
