-- Closed periods of the ledger: `ledger close --month` closes a month and those before it.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- share_period_lock: a batch that posts holds this (shared with other batches) until it commits,
-- so a close waits for the batches in flight and the next ones read the new boundary
SELECT pg_advisory_xact_lock_shared(:key::bigint);

-- take_period_lock: a close holds this alone (no batch posts meanwhile)
SELECT pg_advisory_xact_lock(:key::bigint);

-- closed_before: the first instant of the first open month (NULL: no month is closed); read after
-- taking the lock, in a statement of its own (its snapshot must follow the lock)
SELECT max(closed_before) FROM ledger_closes;

-- close_period: close a month and every one before it
INSERT INTO ledger_closes (month, time_zone, closed_before, actor)
VALUES (:month::date, :time_zone::text, :closed_before::timestamptz, :actor::text)
RETURNING id, closed_at;

-- list_closes: every close, newest first
SELECT id, month, time_zone, closed_before, closed_at, actor FROM ledger_closes
ORDER BY closed_before DESC;
