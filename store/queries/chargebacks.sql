-- The chargebacks table: each status beside its order's (the money is in the ledger).
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- chargeback_states: current status of these chargebacks (their orders are locked already)
SELECT id, status, last_event_id, last_event_created_at FROM chargebacks
WHERE id = ANY(:ids::text[]);

-- upsert_chargebacks: new status of chargebacks (the plan decided it moves forward)
INSERT INTO chargebacks (id, livemode, charge_id, order_id, status, amount, currency,
                         last_event_id, last_event_created_at)
SELECT * FROM unnest(:id::text[], :livemode::boolean[], :charge_id::text[], :order_id::text[],
                     :status::text[], :amount::bigint[], :currency::text[],
                     :last_event_id::text[], :last_event_created_at::timestamptz[])
ORDER BY 1
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, last_event_id = EXCLUDED.last_event_id,
    last_event_created_at = EXCLUDED.last_event_created_at, updated_at = now();

-- order_chargebacks: the chargebacks of one order
SELECT id, status, amount, charge_id FROM chargebacks WHERE order_id = :order_id ORDER BY id;
