-- The order projection: locked, inserted and updated by the worker; read by `orders show`.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- lock_orders: current state of the batch's existing orders, locked in the order given (sorted ids)
-- One primary-key lookup per id: `id = ANY(...)` turns into a seq scan while stats are young.
SELECT o.id, o.status, o.amount, o.currency, o.customer_key, o.livemode, o.last_event_id,
       o.last_event_created_at
FROM unnest(:ids::text[]) WITH ORDINALITY AS wanted (id, n)
CROSS JOIN LATERAL (SELECT * FROM orders WHERE orders.id = wanted.id FOR UPDATE) AS o
ORDER BY wanted.n;

-- insert_orders: first state of new orders; returns those inserted (others raced us)
INSERT INTO orders (id, status, amount, currency, customer_key, livemode, last_event_id,
                    last_event_created_at)
SELECT * FROM unnest(:id::text[], :status::text[], :amount::bigint[], :currency::text[],
                     :customer_key::text[], :livemode::boolean[], :last_event_id::text[],
                     :last_event_created_at::timestamptz[])
ORDER BY 1
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- update_orders: new state of existing (already locked) orders
UPDATE orders AS o
SET status = u.status, amount = u.amount, currency = u.currency,
    customer_key = coalesce(u.customer_key, o.customer_key), last_event_id = u.last_event_id,
    last_event_created_at = u.last_event_created_at, updated_at = now()
FROM unnest(:id::text[], :status::text[], :amount::bigint[], :currency::text[],
            :customer_key::text[], :last_event_id::text[], :last_event_created_at::timestamptz[])
     AS u (id, status, amount, currency, customer_key, last_event_id, last_event_created_at)
WHERE o.id = u.id;

-- get_order: one order
SELECT id, status, amount, currency, customer_key, livemode, last_event_id,
       last_event_created_at, updated_at
FROM orders WHERE id = :order_id;

-- order_events: the archived events of one order, oldest first
SELECT event_id, type, outcome, created_at FROM events WHERE order_id = :order_id
ORDER BY created_at, event_id;

-- orders_updated_since: ids of the orders whose last event is at or after a time
SELECT id FROM orders WHERE last_event_created_at >= :since ORDER BY id;

-- order_money: what one order's ledger says: refunded cents
SELECT coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0)::bigint AS refunded_amount
FROM ledger_transactions WHERE order_id = :order_id;
