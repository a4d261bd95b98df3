-- Dead letters kept in Postgres (looking at them cannot lose them), purge tombstones in the
-- archive, and the audit trail of operator actions.

-- Every dead letter the worker moved out of conekta.dead-letters: headers, reason, body.
-- One open ('dead') row per message id: the same event failing again updates it.
CREATE TABLE dead_letters (
    id               bigserial PRIMARY KEY,
    message_id       text NOT NULL,
    type             text NOT NULL,
    order_id         text,
    kind             text NOT NULL,        -- permanent, transient, delivery_limit, maxlen, ...
    reason           text NOT NULL,
    attempts         integer NOT NULL,
    first_failed_at  timestamptz,
    last_failed_at   timestamptz,
    source_queue     text NOT NULL,        -- the queue it failed from
    exchange         text NOT NULL,        -- where replay publishes it
    routing_key      text NOT NULL,
    headers          jsonb NOT NULL,
    body             bytea NOT NULL,
    dead_at          timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'replayed', 'purged')),
    settled_at       timestamptz,
    settled_by       text,
    settle_reason    text
);
CREATE UNIQUE INDEX dead_letters_open_idx ON dead_letters (message_id) WHERE status = 'dead';
CREATE INDEX dead_letters_dead_at_idx ON dead_letters (dead_at);

-- A purged event stays in the archive as a tombstone, so a resend is recognised, not applied.
INSERT INTO event_outcomes (name, description) VALUES
    ('purged', 'dead letter purged by an operator: a resend is not applied; events replay can');
ALTER TABLE events ADD COLUMN note text;  -- why (purge: by whom and the reason)

-- Operator actions: who, when, what, on how many, with the details.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,               -- os:<user> for the CLI; console users later
    action    text NOT NULL,               -- dlq.replay, dlq.purge, events.replay, ...
    count     integer NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
-- An audit trail is appended to, never rewritten.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
