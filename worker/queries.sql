-- Every query the project runs, by name; only worker/store.py runs them.
-- Each query: "-- name: description", then the statement. Parameters are named (:name); the store
-- turns them into asyncpg's positional $n once, at load.

-- lock_orders: current state of the batch's existing orders, locked in the order given (sorted ids)
-- One primary-key lookup per id: `id = ANY(...)` turns into a seq scan while stats are young.
SELECT o.id, o.status, o.last_event_id, o.last_event_created_at
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

-- archived_event_ids: which of these event ids are already in the archive
SELECT event_id FROM events WHERE event_id = ANY(:ids::text[]);

-- archive_events: store raw events with their outcome (applied_at: now, late in the transaction)
INSERT INTO events (event_id, type, order_id, livemode, created_at, received_at, outcome, body,
                    applied_at)
SELECT *, clock_timestamp()
FROM unnest(:event_id::text[], :type::text[], :order_id::text[], :livemode::boolean[],
            :created_at::timestamptz[], :received_at::timestamptz[], :outcome::text[],
            :body::bytea[])
ON CONFLICT (event_id) DO NOTHING;

-- insert_ledger_transactions: new postings; returns only those not posted before
INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency, event_id)
SELECT * FROM unnest(:business_key::text[], :kind::text[], :order_id::text[], :charge_id::text[],
                     :currency::text[], :event_id::text[])
ORDER BY 1
ON CONFLICT (business_key) DO NOTHING
RETURNING id, business_key;

-- insert_entries: entries, and their sum per account added to balances in one fixed lock order
WITH inserted AS (
    INSERT INTO ledger_entries (transaction_id, account, currency, amount)
    SELECT * FROM unnest(:transaction_id::bigint[], :account::text[], :currency::text[],
                         :amount::bigint[])
    RETURNING account, currency, amount
)
INSERT INTO balances (account, currency, normal_side, balance)
SELECT account, currency,
       CASE WHEN account LIKE 'customer:%' THEN 'credit' ELSE 'debit' END, sum(amount)
FROM inserted GROUP BY account, currency ORDER BY account, currency
ON CONFLICT (account, currency) DO UPDATE SET balance = balances.balance + EXCLUDED.balance;

-- insert_outbox: fulfillment messages to publish after commit
INSERT INTO outbox (message_id, routing_key, body)
SELECT * FROM unnest(:message_id::text[], :routing_key::text[], :body::bytea[])
ON CONFLICT (message_id) DO NOTHING;

-- claim_outbox: unsent messages, oldest first, skipping those another relay holds
SELECT id, message_id, routing_key, body FROM outbox
WHERE sent_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED;

-- mark_outbox_sent: record that the broker confirmed these messages
UPDATE outbox SET sent_at = now() WHERE id = ANY(:ids::bigint[]);

-- outbox_backlog: how many fulfillment messages wait to be published
SELECT count(*) FROM outbox WHERE sent_at IS NULL;

-- get_order: one order
SELECT id, status, amount, currency, customer_key, livemode, last_event_id,
       last_event_created_at, updated_at
FROM orders WHERE id = :order_id;

-- order_events: the archived events of one order, oldest first
SELECT event_id, type, outcome, created_at FROM events WHERE order_id = :order_id
ORDER BY created_at, event_id;

-- list_balances: every balance, signed to its normal side
SELECT account, currency, normal_side,
       CASE WHEN normal_side = 'credit' THEN -balance ELSE balance END AS balance
FROM balances ORDER BY account, currency;

-- verify_unbalanced_transactions: ledger transactions whose entries do not sum to zero
SELECT t.id, t.business_key, coalesce(sum(e.amount), 0)::bigint AS total, count(e.id) AS entries
FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
GROUP BY t.id HAVING coalesce(sum(e.amount), 0) <> 0 OR count(e.id) < 2;

-- verify_balances_match_entries: balances that differ from the sum of their entries
SELECT coalesce(b.account, e.account) AS account, coalesce(b.currency, e.currency) AS currency,
       b.balance AS stored, coalesce(e.total, 0)::bigint AS from_entries
FROM balances b
FULL JOIN (SELECT account, currency, sum(amount) AS total FROM ledger_entries
           GROUP BY account, currency) e ON e.account = b.account AND e.currency = b.currency
WHERE b.balance IS DISTINCT FROM coalesce(e.total, 0);

-- verify_one_payment_per_charge: charges with more than one payment posting
SELECT charge_id, count(*) AS postings FROM ledger_transactions
WHERE kind = 'payment' GROUP BY charge_id HAVING count(*) > 1;

-- verify_payments_of_unpaid_orders: payment postings for orders that are not paid
SELECT t.order_id, o.status FROM ledger_transactions t LEFT JOIN orders o ON o.id = t.order_id
WHERE t.kind = 'payment'
  AND (o.status IS NULL OR o.status NOT IN ('paid', 'partially_refunded', 'refunded', 'charged_back'));

-- verify_paid_orders_without_payment: paid orders with no payment posting
SELECT o.id FROM orders o
WHERE o.status = 'paid'
  AND NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.order_id = o.id AND t.kind = 'payment');

-- verify_currency_totals: per currency, all balances must sum to zero
SELECT currency, sum(balance)::bigint AS total FROM balances GROUP BY currency HAVING sum(balance) <> 0;

-- get_event: one archived event, whole
SELECT event_id, type, order_id, livemode, created_at, received_at, applied_at, outcome, body
FROM events WHERE event_id = :event_id;

-- replay_events: archived events of handled types by filter, in Conekta's order, a page after the
-- (created_at, id) cursor
SELECT event_id, body, received_at, created_at FROM events
WHERE type = ANY(:handled_types::text[])
  AND (:since::timestamptz IS NULL OR created_at >= :since)
  AND (:until::timestamptz IS NULL OR created_at < :until)
  AND (:event_type::text IS NULL OR type = :event_type)
  AND (:order_id::text IS NULL OR order_id = :order_id)
  AND (created_at, event_id) > (:after_created_at::timestamptz, :after_event_id::text)
ORDER BY created_at, event_id
LIMIT :limit;
