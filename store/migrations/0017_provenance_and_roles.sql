-- Issue 24: nothing moves money unless Conekta said so, and each component only what it needs.
--
-- Provenance. The worker re-verifies every webhook body's DIGEST before applying it; a message
-- that fails is archived `unverified` (under a key of its own: it never claims the event's id)
-- and moves nothing. Every archived event and every posting says where it came from:
--   signed            a body whose DIGEST the applying process verified
--   api               fetched from Conekta's API by the process that applied it
--   attested:<user>   an operator's word (`orders record FILE`): audited, listed by
--                     `ledger verify --provenance` until a signed event or an API record confirms it
-- NULL: recorded before this migration (`ledger verify --provenance` re-checks those too).
INSERT INTO event_outcomes (name, description) VALUES
    ('unverified', 'its DIGEST did not verify with any configured key: kept with the reason, '
                   'moved nothing, did not claim its event id');

ALTER TABLE events ADD COLUMN provenance text
    CHECK (provenance IN ('signed', 'api') OR provenance LIKE 'attested:%');
ALTER TABLE ledger_transactions ADD COLUMN provenance text
    CHECK (provenance IN ('signed', 'api') OR provenance LIKE 'attested:%');
CREATE INDEX ledger_transactions_attested_idx ON ledger_transactions (order_id)
    WHERE provenance LIKE 'attested:%';

-- Balances are kept by a trigger owned by the owner (SECURITY DEFINER), so no runtime role may
-- UPDATE them: a role that can insert entries moves a balance only by a balanced posting. The
-- same statement as insert_entries did, in the same lock order.
CREATE FUNCTION ledger_entries_to_balances() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO balances (account, currency, livemode, balance)
    SELECT i.account, i.currency, t.livemode, sum(i.amount)
    FROM new_entries i JOIN ledger_transactions t ON t.id = i.transaction_id
    GROUP BY i.account, i.currency, t.livemode ORDER BY 1, 2, 3
    ON CONFLICT (account, currency, livemode)
        DO UPDATE SET balance = balances.balance + EXCLUDED.balance;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION ledger_entries_to_balances() FROM PUBLIC;

CREATE TRIGGER ledger_entries_to_balances
    AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_to_balances();

-- Console users: only the owner writes them (`console add-user`, `disable-user`, `remove-user`).
-- A session counts only while its user is enabled and was opened after the last password change,
-- so disabling a user or changing a password ends their sessions even if a row were left behind.
-- Existing users: their sessions stay valid ('-infinity'); new changes take the time of the change.
ALTER TABLE console_users
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN password_changed_at timestamptz NOT NULL DEFAULT '-infinity';
ALTER TABLE console_users ALTER COLUMN password_changed_at SET DEFAULT now();
