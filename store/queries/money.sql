-- The money rules' own rows (issue 22): paid charges as booked, refunds as Conekta last said,
-- what each chargeback's postings hold, orders flagged for reconcile, and ledger verify's
-- warnings about them. Each query: "-- name: description", then the statement.

-- charge_rows: paid charges already booked, by id (both modes: the plan keys them by mode). One
-- primary-key lookup per id and mode (as lock_orders): `id = ANY(...)` alone cannot use the key
-- (livemode, id) and read the whole table per batch.
SELECT c.livemode, c.id, c.order_id, c.amount, c.currency, c.customer_key, c.fee, c.paid_at
FROM unnest(:ids::text[]) AS wanted (id)
CROSS JOIN LATERAL (SELECT * FROM charges
                    WHERE charges.livemode IN (true, false) AND charges.id = wanted.id
                    OFFSET 0) AS c;  -- OFFSET 0: kept a lookup, not flattened into a join

-- upsert_charges: charges booked now, and fees learnt for charges booked before (a known fee
-- never changes: settlement's true-ups are postings of their own)
-- (:charges: one JSON array of rows in the order of store/apply.CHARGE_COLUMNS, sql.rows_json)
INSERT INTO charges (livemode, id, order_id, amount, currency, customer_key, fee, paid_at)
SELECT (c ->> 0)::boolean, c ->> 1, c ->> 2, (c ->> 3)::bigint, c ->> 4, c ->> 5,
       (c ->> 6)::bigint, (c ->> 7)::timestamptz
FROM jsonb_array_elements(:charges::jsonb) AS c
ORDER BY 2, 1
ON CONFLICT (livemode, id) DO UPDATE SET fee = coalesce(charges.fee, EXCLUDED.fee),
    updated_at = now();

-- refund_rows: the refunds of these charges (both modes)
SELECT livemode, id, charge_id, order_id, amount, currency, status, created_at, last_event_id
FROM refunds WHERE charge_id = ANY(:charge_ids::text[]);

-- upsert_refunds: refunds seen now, or whose state moved on
INSERT INTO refunds (livemode, id, charge_id, order_id, amount, currency, status, created_at,
                     last_event_id)
SELECT * FROM unnest(:livemode::boolean[], :id::text[], :charge_id::text[], :order_id::text[],
                     :amount::bigint[], :currency::text[], :status::text[],
                     :created_at::timestamptz[], :last_event_id::text[])
ORDER BY 2, 1
ON CONFLICT (livemode, id) DO UPDATE SET status = EXCLUDED.status,
    last_event_id = EXCLUDED.last_event_id, updated_at = now();

-- chargeback_money: what the postings of the chargebacks of these charges hold: in
-- conekta:disputed, given to the customer; how many postings, and the steps posted under a
-- plain key (chargeback:<id>:<step>). Charge by charge (as lock_orders: `= ANY(...)` turns into a
-- scan of every posting while stats are young)
SELECT t.livemode, split_part(t.business_key, ':', 2) AS id,
       coalesce(sum(e.amount) FILTER (WHERE e.account = 'conekta:disputed'), 0)::bigint
           AS withheld,
       coalesce(sum(e.amount) FILTER (WHERE e.account LIKE 'customer:%'), 0)::bigint AS lost,
       count(DISTINCT t.id) AS postings,
       coalesce(array_agg(DISTINCT split_part(t.business_key, ':', 3))
                FILTER (WHERE split_part(t.business_key, ':', 4) = ''), '{}') AS steps
FROM unnest(:charge_ids::text[]) AS wanted (charge_id)
CROSS JOIN LATERAL (SELECT * FROM ledger_transactions
                    WHERE ledger_transactions.charge_id = wanted.charge_id
                      AND ledger_transactions.kind LIKE 'chargeback%'
                    OFFSET 0) AS t  -- OFFSET 0: kept a lookup, not flattened into a join
JOIN ledger_entries e ON e.transaction_id = t.id
GROUP BY 1, 2;

-- flag_for_reconcile: orders whose event said a list goes on (has_more); flagged again when
-- it happens again after a reconcile resolved it
INSERT INTO reconcile_flags (livemode, order_id, reason, event_id)
SELECT * FROM unnest(:livemode::boolean[], :order_id::text[], :reason::text[],
                     :event_id::text[])
ORDER BY 2, 3, 1
ON CONFLICT (livemode, order_id, reason) DO UPDATE SET event_id = EXCLUDED.event_id,
    flagged_at = now(), resolved_at = NULL;

-- order_refunds: the refunds of one order, as Conekta last said (a pending one is not posted)
SELECT id, livemode, charge_id, amount, status, created_at FROM refunds
WHERE order_id = :order_id AND livemode = :livemode ORDER BY created_at, id;

-- order_reconcile_flags: why one order waits for reconcile (unresolved)
SELECT reason, event_id, flagged_at FROM reconcile_flags
WHERE order_id = :order_id AND livemode = :livemode AND resolved_at IS NULL ORDER BY reason;

-- warn_fee_unknown: paid charges whose fee no event has carried, 3 days after they were paid
SELECT livemode, id AS charge_id, order_id, amount, paid_at FROM charges
WHERE fee IS NULL AND paid_at < now() - interval '3 days' ORDER BY paid_at, id;

-- warn_overpaid_orders: orders whose paid charges add up to more than the order's amount
-- (several cash references all paid): applied, for someone to look at
SELECT c.livemode, c.order_id, o.amount, sum(c.amount)::bigint AS paid
FROM charges c JOIN orders o ON o.id = c.order_id AND o.livemode = c.livemode
GROUP BY c.livemode, c.order_id, o.amount HAVING sum(c.amount) > o.amount
ORDER BY c.order_id;

-- warn_reconcile_flags: orders waiting for reconcile to fetch what a has_more list left out
SELECT livemode, order_id, reason, event_id, flagged_at FROM reconcile_flags
WHERE resolved_at IS NULL ORDER BY flagged_at, order_id;
