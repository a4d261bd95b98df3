-- Archive, order projection, double-entry ledger and fulfillment outbox.

-- Every consumed event, once, with its exact raw bytes and what became of it.
CREATE TABLE events (
    event_id     text PRIMARY KEY,
    type         text NOT NULL,
    order_id     text,
    livemode     boolean NOT NULL,
    created_at   timestamptz NOT NULL,            -- Conekta's created_at
    received_at  timestamptz,                     -- when the receiver accepted it
    applied_at   timestamptz NOT NULL DEFAULT now(),
    -- 'ignored': a type with no handler yet (archived from conekta.unhandled)
    outcome      text NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'stale', 'ignored')),
    body         bytea NOT NULL
);
CREATE INDEX events_order_id_idx ON events (order_id);
CREATE INDEX events_created_at_idx ON events (created_at);

-- The current state of each order, never moved backwards.
CREATE TABLE orders (
    id                     text PRIMARY KEY,
    status                 text NOT NULL,
    amount                 bigint NOT NULL CHECK (amount >= 0),
    currency               text NOT NULL,
    customer_key           text,
    livemode               boolean NOT NULL,
    last_event_id          text NOT NULL,
    last_event_created_at  timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- One row per movement of money; business_key makes a second posting of the same money impossible.
CREATE TABLE ledger_transactions (
    id            bigserial PRIMARY KEY,
    business_key  text NOT NULL UNIQUE,           -- kind:order_id:charge_id
    kind          text NOT NULL,
    order_id      text NOT NULL,
    charge_id     text NOT NULL,
    currency      text NOT NULL,
    event_id      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Signed amounts: debit positive, credit negative. Entries are never changed or removed.
CREATE TABLE ledger_entries (
    id              bigserial PRIMARY KEY,
    transaction_id  bigint NOT NULL REFERENCES ledger_transactions (id),
    account         text NOT NULL,
    currency        text NOT NULL,
    amount          bigint NOT NULL CHECK (amount <> 0)
);
CREATE INDEX ledger_entries_transaction_idx ON ledger_entries (transaction_id);

-- Running balance per account and currency (debit positive), kept equal to the sum of its entries.
CREATE TABLE balances (
    account      text NOT NULL,
    currency     text NOT NULL,
    normal_side  text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    balance      bigint NOT NULL,
    PRIMARY KEY (account, currency)
);

-- Messages for downstream services, written in the ledger's transaction, published after commit.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    message_id   text NOT NULL UNIQUE,
    routing_key  text NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

-- Every statement that inserts entries must leave each of its transactions balanced.
CREATE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced bigint;
BEGIN
    SELECT transaction_id INTO unbalanced
    FROM new_entries GROUP BY transaction_id, currency HAVING sum(amount) <> 0 LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not balance', unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_balanced();

CREATE FUNCTION ledger_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_entries_immutable
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_immutable();
