-- Reconciling with Conekta's API: the runs, the events they backfilled, the lock, and `stats`.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- reconcile_try_lock: one reconcile at a time across every worker and command (session lock)
SELECT pg_try_advisory_lock(:key::bigint);

-- reconcile_unlock: let the next reconcile run
SELECT pg_advisory_unlock(:key::bigint);

-- reconcile_start: a run begins over [since, until)
INSERT INTO reconcile_runs (since, until, dry_run) VALUES (:since, :until, :dry_run) RETURNING id;

-- reconcile_finish: a run ends, ok or failed, with its counts
UPDATE reconcile_runs
SET finished_at = now(), status = :status, livemode = :livemode, counts = :counts::jsonb,
    error = :error
WHERE id = :run_id;

-- reconcile_last_success: the end of the newest window reconciled, and when that run finished
SELECT max(until) AS until, max(finished_at) AS finished_at FROM reconcile_runs
WHERE status = 'ok' AND NOT dry_run;

-- reconcile_known_events: which of these ids are archived (event_ids: bodies may be pruned), or
-- were backfilled already
SELECT w.id AS event_id, e.event_id IS NOT NULL AS archived, b.event_id IS NOT NULL AS backfilled
FROM unnest(:ids::text[]) AS w (id)
LEFT JOIN event_ids e ON e.event_id = w.id
LEFT JOIN reconcile_backfills b ON b.event_id = w.id
WHERE e.event_id IS NOT NULL OR b.event_id IS NOT NULL;

-- reconcile_record_backfills: events a run published (confirmed by the broker)
INSERT INTO reconcile_backfills (event_id, type, livemode, created_at, run_id)
SELECT *, :run_id::bigint
FROM unnest(:event_id::text[], :type::text[], :livemode::boolean[], :created_at::timestamptz[])
ON CONFLICT (event_id) DO NOTHING;

-- reconcile_last_run: the newest successful, not dry, run whole
SELECT id, started_at, finished_at, since, until, livemode, counts FROM reconcile_runs
WHERE status = 'ok' AND NOT dry_run ORDER BY finished_at DESC LIMIT 1;

-- stats_archived: archived events per day (Conekta's created_at, UTC), type and outcome
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, type, outcome, count(*) AS events
FROM events
WHERE created_at >= :since AND created_at < :until
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- stats_window_archived: archived events of one mode in a window, per type
SELECT type, count(*) AS events FROM events
WHERE created_at >= :since AND created_at < :until
  AND (:livemode::boolean IS NULL OR livemode = :livemode)
GROUP BY type;

-- stats_window_backfilled_unarchived: backfilled events of a window not archived yet, per type
SELECT b.type, count(*) AS events FROM reconcile_backfills b
WHERE b.created_at >= :since AND b.created_at < :until
  AND NOT EXISTS (SELECT 1 FROM event_ids e WHERE e.event_id = b.event_id)
GROUP BY b.type;
