-- Issue 22 (B): orders and chargebacks per mode, the chart of accounts, closed periods.
-- No posted ledger entry or transaction changes: entries only gain a foreign key to the account
-- they name, and transactions a column that stays NULL for every one posted before.

-- Orders and chargebacks are keyed by (id, livemode): Conekta's test and live modes may use the
-- same id, and a test order's state must never judge a live event (or the other way round).
-- Existing rows keep their values (under the old key no id could be in both modes).
ALTER TABLE chargebacks DROP CONSTRAINT chargebacks_order_id_fkey;
ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, livemode);
ALTER TABLE chargebacks DROP CONSTRAINT chargebacks_pkey, ADD PRIMARY KEY (id, livemode),
    ADD CONSTRAINT chargebacks_order_fkey
        FOREIGN KEY (order_id, livemode) REFERENCES orders (id, livemode);
DROP INDEX chargebacks_order_idx;
CREATE INDEX chargebacks_order_idx ON chargebacks (order_id, livemode);

-- The chart of accounts: every account the ledger writes, with its type and normal side
-- (domain/accounts.py decides them from the name's declared pattern; the store declares a new
-- account before its first entry). The normal side follows from the type.
CREATE TABLE accounts (
    name         text PRIMARY KEY,
    type         text NOT NULL
                 CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    normal_side  text NOT NULL CHECK (normal_side = CASE WHEN type IN ('asset', 'expense')
                                                        THEN 'debit' ELSE 'credit' END),
    declared_at  timestamptz NOT NULL DEFAULT now()
);
-- The accounts written so far (each has a balance row), typed as domain/accounts.py types them;
-- a name it does not know stops the migration (type NULL), never guessed.
INSERT INTO accounts (name, type, normal_side)
SELECT name, type, CASE WHEN type IN ('asset', 'expense') THEN 'debit' ELSE 'credit' END
FROM (SELECT name,
             CASE WHEN name IN ('conekta:receivable', 'conekta:disputed', 'conekta:in_transit',
                                'tax:vat_on_fees') OR name LIKE 'bank:_%' THEN 'asset'
                  WHEN name IN ('conekta:fees', 'conekta:dispute_fees', 'conekta:adjustments')
                      THEN 'expense'
                  WHEN name LIKE 'customer:_%' THEN 'revenue'
             END AS type
      FROM (SELECT DISTINCT account AS name FROM balances) b) t;
ALTER TABLE ledger_entries
    ADD CONSTRAINT ledger_entries_account_fkey FOREIGN KEY (account) REFERENCES accounts (name);
ALTER TABLE balances
    ADD CONSTRAINT balances_account_fkey FOREIGN KEY (account) REFERENCES accounts (name);
-- The normal side was guessed per balance row (customer:% credit, the rest debit); it is the
-- account's, declared once.
ALTER TABLE balances DROP COLUMN normal_side;

-- Closed periods: `ledger close --month M` closes M and every month before it (months of the
-- ledger's zone, CONEKTA_LEDGER_TZ). The books are closed before the newest closed_before.
CREATE TABLE ledger_closes (
    id             bigserial PRIMARY KEY,
    month          date NOT NULL,                 -- the first day of the month closed
    time_zone      text NOT NULL,                 -- the zone its bounds were read in
    closed_before  timestamptz NOT NULL UNIQUE,   -- the first instant of the next month there
    closed_at      timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL
);

-- A movement whose date falls in a closed period is booked on the first open instant
-- (effective_at); occurred_at keeps its own date. NULL: it occurred at effective_at.
ALTER TABLE ledger_transactions ADD COLUMN occurred_at timestamptz;

-- Nothing is ever booked inside a closed period (the worker books late movements after it; this
-- refuses any that would not be).
CREATE FUNCTION ledger_transactions_open_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed timestamptz;
BEGIN
    SELECT max(closed_before) INTO closed FROM ledger_closes;
    IF closed IS NOT NULL AND EXISTS (SELECT 1 FROM new_rows WHERE effective_at < closed) THEN
        RAISE EXCEPTION 'a ledger transaction would be effective before %, in a closed period',
            closed USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_transactions_open_period
    AFTER INSERT ON ledger_transactions REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transactions_open_period();

CREATE FUNCTION ledger_closes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a closed period stays closed' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER ledger_closes_append_only BEFORE UPDATE OR DELETE ON ledger_closes
    FOR EACH ROW EXECUTE FUNCTION ledger_closes_append_only();
