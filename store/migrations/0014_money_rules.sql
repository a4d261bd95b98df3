-- Issue 22, the money rules: each paid charge as booked (its customer fixed, its fee once known),
-- each refund as Conekta last said (a pending one is recorded, not posted), the chargebacks'
-- own status, date and target, and orders flagged for `reconcile` (a list with has_more).
-- Backfilled from what the ledger already holds; no ledger entry or transaction changes.

-- A paid charge, written when its payment is posted. customer_key is the account its payment
-- credited: its refunds and chargebacks use it whatever later events say. fee NULL: no event
-- carried it yet (`ledger verify` warns after 3 days).
CREATE TABLE charges (
    livemode      boolean NOT NULL,
    id            text NOT NULL,
    order_id      text NOT NULL,
    amount        bigint NOT NULL CHECK (amount >= 0),
    currency      text NOT NULL,
    customer_key  text NOT NULL,
    fee           bigint CHECK (fee >= 0),
    paid_at       timestamptz NOT NULL,
    booked_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (livemode, id)
);
CREATE INDEX charges_order_idx ON charges (order_id);
CREATE INDEX charges_fee_unknown_idx ON charges (paid_at) WHERE fee IS NULL;

-- Payments posted before this held their fee inside the payment (receivable A - F, fees F): such
-- a charge is booked with that fee known, so no event posts it a second time. A payment with no
-- fee entry had a fee of 0 or none in its event: 0 when the raw event says 0, else unknown.
INSERT INTO charges (livemode, id, order_id, amount, currency, customer_key, fee, paid_at,
                     booked_at)
SELECT t.livemode, t.charge_id, t.order_id, t.amount, t.currency,
       (SELECT substr(e.account, length('customer:') + 1) FROM ledger_entries e
        WHERE e.transaction_id = t.id AND e.account LIKE 'customer:%' LIMIT 1),
       (SELECT e.amount FROM ledger_entries e
        WHERE e.transaction_id = t.id AND e.account = 'conekta:fees'),
       t.effective_at, t.recorded_at
FROM ledger_transactions t WHERE t.kind = 'payment'
ON CONFLICT DO NOTHING;
WITH bodies AS MATERIALIZED (
    SELECT c.livemode, c.id, convert_from(e.body, 'UTF8') AS body
    FROM charges c
    JOIN ledger_transactions t ON t.kind = 'payment' AND t.livemode = c.livemode
                              AND t.charge_id = c.id
    JOIN events e ON e.event_id = t.event_id
    WHERE c.fee IS NULL
), documents AS MATERIALIZED (
    SELECT livemode, id, (CASE WHEN position('\u0000' IN body) = 0 THEN body::jsonb END) AS doc
    FROM bodies
)
UPDATE charges c SET fee = 0
FROM documents d,
     jsonb_array_elements(CASE WHEN jsonb_typeof(d.doc #> '{data,object,charges,data}') = 'array'
                               THEN d.doc #> '{data,object,charges,data}' ELSE '[]'::jsonb END)
         AS charge
WHERE c.livemode = d.livemode AND c.id = d.id AND charge ->> 'id' = c.id
  AND jsonb_typeof(charge -> 'fee') = 'number' AND (charge ->> 'fee')::numeric = 0;

-- A refund as Conekta last said. status NULL: none said (older API versions): its money moved.
CREATE TABLE refunds (
    livemode       boolean NOT NULL,
    id             text NOT NULL,
    charge_id      text NOT NULL,
    order_id       text NOT NULL,
    amount         bigint NOT NULL CHECK (amount >= 0),
    currency       text NOT NULL,
    status         text,
    created_at     timestamptz NOT NULL,            -- Conekta's
    last_event_id  text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (livemode, id)
);
CREATE INDEX refunds_charge_idx ON refunds (charge_id);
CREATE INDEX refunds_order_idx ON refunds (order_id);
-- Every refund posted so far moved its money (refund:<order>:<refund id>, at its created_at).
INSERT INTO refunds (livemode, id, charge_id, order_id, amount, currency, status, created_at,
                     last_event_id)
SELECT livemode, substr(business_key, length('refund:' || order_id || ':') + 1), charge_id,
       order_id, amount, currency, NULL, effective_at, event_id
FROM ledger_transactions WHERE kind = 'refund'
ON CONFLICT DO NOTHING;

-- A chargeback's status in Conekta's words (status keeps the fulfillment's four), its own
-- created_at (refunds before it lower its target) and Conekta's transaction for it (settlement
-- fills it; then it is the target). amount is now its target.
ALTER TABLE chargebacks
    ADD COLUMN conekta_status text,
    ADD COLUMN opened_at timestamptz,
    ADD COLUMN conekta_amount bigint;
UPDATE chargebacks c
SET conekta_status = c.status,
    opened_at = coalesce((SELECT t.effective_at FROM ledger_transactions t
                          WHERE t.business_key = 'chargeback:' || c.id || ':opened'
                            AND t.livemode = c.livemode),
                         c.last_event_created_at);
ALTER TABLE chargebacks
    ALTER COLUMN conekta_status SET NOT NULL,
    ALTER COLUMN opened_at SET NOT NULL;
CREATE INDEX chargebacks_charge_idx ON chargebacks (charge_id);  -- a refund finds them

-- Orders whose event said a list goes on (has_more): what it carried was applied; `reconcile`
-- fetches the rest (resolved_at when it has).
CREATE TABLE reconcile_flags (
    livemode     boolean NOT NULL,
    order_id     text NOT NULL,
    reason       text NOT NULL,
    event_id     text NOT NULL,
    flagged_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    PRIMARY KEY (livemode, order_id, reason)
);
CREATE INDEX reconcile_flags_open_idx ON reconcile_flags (flagged_at) WHERE resolved_at IS NULL;
