-- The whole life of an order: refunds, chargebacks, effective dates, and test money kept apart
-- from live money (livemode is part of every business key and every balance).

INSERT INTO event_outcomes (name, description) VALUES
    ('other_mode', 'livemode not accepted by this deployment (CONEKTA_ACCEPT_MODES): archived only');

-- Each transaction says when the money moved (effective_at) beside when it was recorded, its
-- mode, and the money it moved (positive cents; a chargeback finds the charge's amount here).
ALTER TABLE ledger_transactions RENAME COLUMN created_at TO recorded_at;
ALTER TABLE ledger_transactions
    ADD COLUMN livemode boolean,
    ADD COLUMN effective_at timestamptz,
    ADD COLUMN amount bigint;
UPDATE ledger_transactions t SET livemode = e.livemode FROM events e WHERE e.event_id = t.event_id;
UPDATE ledger_transactions t SET livemode = o.livemode
FROM orders o WHERE o.id = t.order_id AND t.livemode IS NULL;
UPDATE ledger_transactions t
SET effective_at = t.recorded_at,
    livemode = coalesce(t.livemode, true),
    amount = (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e
              WHERE e.transaction_id = t.id AND e.amount > 0);
-- Payments already booked moved their money at the charge's paid_at, read from the raw event
-- that posted them (a body with \u0000 cannot become jsonb: it keeps its recorded time).
WITH bodies AS MATERIALIZED (
    SELECT t.id, t.charge_id, convert_from(e.body, 'UTF8') AS body
    FROM ledger_transactions t JOIN events e ON e.event_id = t.event_id
    WHERE t.kind = 'payment'
), charges AS MATERIALIZED (
    SELECT id, charge_id,
           (CASE WHEN position('\u0000' IN body) = 0 THEN body::jsonb END)
               #> '{data,object,charges,data}' AS charges
    FROM bodies
)
UPDATE ledger_transactions t
SET effective_at = to_timestamp((charge ->> 'paid_at')::double precision)
FROM charges c,
     jsonb_array_elements(CASE WHEN jsonb_typeof(c.charges) = 'array' THEN c.charges
                               ELSE '[]'::jsonb END) AS charge
WHERE t.id = c.id AND charge ->> 'id' = c.charge_id
  AND jsonb_typeof(charge -> 'paid_at') = 'number';
ALTER TABLE ledger_transactions
    ALTER COLUMN livemode SET NOT NULL,
    ALTER COLUMN effective_at SET NOT NULL,
    ALTER COLUMN amount SET NOT NULL,
    ADD CONSTRAINT ledger_transactions_amount_check CHECK (amount >= 0),
    DROP CONSTRAINT ledger_transactions_business_key_key,
    ADD CONSTRAINT ledger_transactions_business_key_livemode_key UNIQUE (business_key, livemode);
CREATE INDEX ledger_transactions_charge_idx ON ledger_transactions (charge_id);
CREATE INDEX ledger_transactions_order_idx ON ledger_transactions (order_id);
CREATE INDEX ledger_transactions_effective_idx ON ledger_transactions (effective_at);

-- Balances per mode, rebuilt from the entries (before this, test and live money shared a row).
ALTER TABLE balances ADD COLUMN livemode boolean NOT NULL DEFAULT true;
ALTER TABLE balances ALTER COLUMN livemode DROP DEFAULT;
ALTER TABLE balances DROP CONSTRAINT balances_pkey;
DELETE FROM balances;
INSERT INTO balances (account, currency, livemode, normal_side, balance)
SELECT e.account, e.currency, t.livemode,
       CASE WHEN e.account LIKE 'customer:%' THEN 'credit' ELSE 'debit' END, sum(e.amount)
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
GROUP BY e.account, e.currency, t.livemode;
ALTER TABLE balances ADD PRIMARY KEY (account, currency, livemode);

-- A chargeback's status beside its order's (the order's payment status never moves back).
CREATE TABLE chargebacks (
    id                     text PRIMARY KEY,
    livemode               boolean NOT NULL,
    charge_id              text NOT NULL,
    order_id               text NOT NULL REFERENCES orders (id),
    status                 text NOT NULL CHECK (status IN ('open', 'under_review', 'won', 'lost')),
    amount                 bigint NOT NULL CHECK (amount >= 0),
    currency               text NOT NULL,
    last_event_id          text NOT NULL,
    last_event_created_at  timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chargebacks_order_idx ON chargebacks (order_id);
