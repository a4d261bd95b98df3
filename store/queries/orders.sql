-- The order projection: locked, inserted and updated by the worker; read by `orders show`.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- lock_orders: current state of the batch's existing orders (by id and mode), locked in the order
-- given (sorted by id, then mode). One primary-key lookup per key: `= ANY(...)` turns into a seq
-- scan while stats are young.
SELECT o.id, o.status, o.amount, o.currency, o.customer_key, o.livemode, o.last_event_id,
       o.last_event_created_at
FROM unnest(:ids::text[], :livemodes::boolean[]) WITH ORDINALITY AS wanted (id, livemode, n)
CROSS JOIN LATERAL (SELECT * FROM orders
                    WHERE orders.id = wanted.id AND orders.livemode = wanted.livemode
                    FOR UPDATE) AS o
ORDER BY wanted.n;

-- insert_orders: first state of new orders; returns those inserted (others raced us). :orders is
-- one JSON array of rows in the order of store/apply.ORDER_COLUMNS (sql.rows_json)
INSERT INTO orders (id, status, amount, currency, customer_key, livemode, last_event_id,
                    last_event_created_at)
SELECT o ->> 0, o ->> 1, (o ->> 2)::bigint, o ->> 3, o ->> 4, (o ->> 5)::boolean, o ->> 6,
       (o ->> 7)::timestamptz
FROM jsonb_array_elements(:orders::jsonb) AS o
ORDER BY 1, 6
ON CONFLICT (id, livemode) DO NOTHING
RETURNING id;

-- update_orders: new state of existing (already locked) orders; :orders as insert_orders
UPDATE orders AS o
SET status = u.status, amount = u.amount, currency = u.currency,
    customer_key = coalesce(u.customer_key, o.customer_key), last_event_id = u.last_event_id,
    last_event_created_at = u.last_event_created_at, updated_at = now()
FROM (SELECT r ->> 0 AS id, r ->> 1 AS status, (r ->> 2)::bigint AS amount, r ->> 3 AS currency,
             r ->> 4 AS customer_key, (r ->> 5)::boolean AS livemode, r ->> 6 AS last_event_id,
             (r ->> 7)::timestamptz AS last_event_created_at
      FROM jsonb_array_elements(:orders::jsonb) AS r) AS u
WHERE o.id = u.id AND o.livemode = u.livemode;

-- get_order: one order in one mode; without a mode, the live one if there is one, else the test one
SELECT id, status, amount, currency, customer_key, livemode, last_event_id,
       last_event_created_at, updated_at
FROM orders WHERE id = :order_id AND (:livemode::boolean IS NULL OR livemode = :livemode)
ORDER BY livemode DESC LIMIT 1;

-- order_events: the archived events of one order (of one mode), oldest first
SELECT event_id, type, outcome, created_at FROM events
WHERE order_id = :order_id AND livemode = :livemode
ORDER BY created_at, event_id;

-- orders_updated_since: ids of the orders whose last event is at or after a time
SELECT id FROM orders WHERE last_event_created_at >= :since ORDER BY id;

-- order_money: what one order's ledger says (in its mode): refunded cents (less refunds
-- reversed)
SELECT (coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0)
        - coalesce(sum(amount) FILTER (WHERE kind = 'refund_reversed'), 0))::bigint
           AS refunded_amount
FROM ledger_transactions WHERE order_id = :order_id AND livemode = :livemode;
