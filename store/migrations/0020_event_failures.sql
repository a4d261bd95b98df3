-- Events in flight after a failure (issue 25): each time the worker sends an event to a retry tier
-- or to the dead letters it first records why, and when the next attempt is due; the row goes in
-- the statement that archives the event or stores it as a dead letter. So an event the worker has
-- seen is always somewhere `events show` looks: archived, a dead letter, or here.
CREATE TABLE event_failures (
    event_id        text PRIMARY KEY,  -- the archive's key (the AMQP message id)
    type            text,
    attempt         integer NOT NULL CHECK (attempt > 0),
    error_kind      text NOT NULL,     -- worker/failures.py FailureKind
    error           text NOT NULL,
    sent_to         text NOT NULL CHECK (sent_to IN ('retry', 'dead_letters')),
    queue           text NOT NULL,     -- the retry tier's queue, or the dead-letter queue
    next_attempt_at timestamptz,       -- retries only
    first_failed_at timestamptz NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_failures_by_kind ON event_failures (error_kind, failed_at);
