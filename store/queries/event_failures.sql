-- Events in flight after a failure (0020): sent to a retry tier, or to the dead letters and not
-- stored there yet. Archiving an event or storing its dead letter deletes its row (archive.sql,
-- dead_letters.sql), so what is here is exactly what is on its way.

-- record_event_failure: an event sent to a retry tier or the dead letters (before the publish)
INSERT INTO event_failures (event_id, type, attempt, error_kind, error, sent_to, queue,
                            next_attempt_at, first_failed_at)
VALUES (:event_id, :type, :attempt, :error_kind, :error, :sent_to, :queue, :next_attempt_at,
        :first_failed_at)
ON CONFLICT (event_id) DO UPDATE SET
    type = EXCLUDED.type, attempt = EXCLUDED.attempt, error_kind = EXCLUDED.error_kind,
    error = EXCLUDED.error, sent_to = EXCLUDED.sent_to, queue = EXCLUDED.queue,
    next_attempt_at = EXCLUDED.next_attempt_at, failed_at = now();

-- get_event_failure: one event in flight after a failure
SELECT * FROM event_failures WHERE event_id = :event_id;

-- list_event_failures: events in flight after a failure, by reason then oldest first; one kind
-- (NULL: any)
SELECT * FROM event_failures
WHERE (:error_kind::text IS NULL OR error_kind = :error_kind)
ORDER BY error_kind, failed_at, event_id
LIMIT :limit;

-- count_event_failures: events in flight after a failure, per reason and destination
SELECT error_kind, sent_to, count(*) AS events, min(failed_at) AS oldest
FROM event_failures GROUP BY error_kind, sent_to ORDER BY error_kind, sent_to;
