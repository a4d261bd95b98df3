-- The chargebacks table: each status beside its order's (the money is in the ledger).
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- chargeback_states: current status of these chargebacks, by id and mode (their orders are locked
-- already)
SELECT c.id, c.livemode, c.status, c.last_event_id, c.last_event_created_at
FROM unnest(:ids::text[], :livemodes::boolean[]) AS wanted (id, livemode)
JOIN chargebacks c ON c.id = wanted.id AND c.livemode = wanted.livemode;

-- upsert_chargebacks: new status of chargebacks (the plan decided it moves forward)
INSERT INTO chargebacks (id, livemode, charge_id, order_id, status, amount, currency,
                         last_event_id, last_event_created_at)
SELECT * FROM unnest(:id::text[], :livemode::boolean[], :charge_id::text[], :order_id::text[],
                     :status::text[], :amount::bigint[], :currency::text[],
                     :last_event_id::text[], :last_event_created_at::timestamptz[])
ORDER BY 1, 2
ON CONFLICT (id, livemode) DO UPDATE SET status = EXCLUDED.status, last_event_id = EXCLUDED.last_event_id,
    last_event_created_at = EXCLUDED.last_event_created_at, updated_at = now();

-- order_chargebacks: the chargebacks of one order (of one mode)
SELECT id, status, amount, charge_id FROM chargebacks
WHERE order_id = :order_id AND livemode = :livemode ORDER BY id;
