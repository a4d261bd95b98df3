-- The chargebacks table: each status beside its order's (the money is in the ledger).
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- chargeback_states: these chargebacks, and those of these charges, in both modes (the plan
-- keys them by mode; their orders are locked already)
SELECT id, livemode, charge_id, order_id, status, amount, currency, last_event_id,
       last_event_created_at, conekta_status, opened_at, conekta_amount
FROM chargebacks WHERE id = ANY(:ids::text[]) OR charge_id = ANY(:charge_ids::text[]);

-- upsert_chargebacks: new status of chargebacks (the plan decided it moves forward), their date
-- and their target
INSERT INTO chargebacks (id, livemode, charge_id, order_id, status, amount, currency,
                         last_event_id, last_event_created_at, conekta_status, opened_at)
SELECT * FROM unnest(:id::text[], :livemode::boolean[], :charge_id::text[], :order_id::text[],
                     :status::text[], :amount::bigint[], :currency::text[],
                     :last_event_id::text[], :last_event_created_at::timestamptz[],
                     :conekta_status::text[], :opened_at::timestamptz[])
ORDER BY 1, 2
ON CONFLICT (id, livemode) DO UPDATE SET status = EXCLUDED.status,
    last_event_id = EXCLUDED.last_event_id,
    last_event_created_at = EXCLUDED.last_event_created_at, amount = EXCLUDED.amount,
    conekta_status = EXCLUDED.conekta_status, opened_at = EXCLUDED.opened_at, updated_at = now();

-- order_chargebacks: the chargebacks of one order (of one mode)
SELECT id, status, conekta_status, amount, charge_id FROM chargebacks
WHERE order_id = :order_id AND livemode = :livemode ORDER BY id;
