-- What on-call looks at: events found by any key, an order's money and messages, the ledger as
-- of a date, the numbers of the overview.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- search_events: archived events by filter (customer: any id, e-mail or name an event of the
-- order carried), newest first, a page after the (created_at, id) cursor
SELECT e.event_id, e.type, e.order_id, e.livemode, e.created_at, e.received_at, e.applied_at,
       e.outcome, o.customer_key
FROM events e LEFT JOIN orders o ON o.id = e.order_id AND o.livemode = e.livemode
WHERE (:event_id::text IS NULL OR e.event_id = :event_id)
  AND (:order_id::text IS NULL OR e.order_id = :order_id)
  AND (:customer::text IS NULL OR e.order_id IN (
           SELECT order_id FROM order_customers
           WHERE term IN (btrim(:customer), lower(btrim(:customer)))))
  AND (:event_type::text IS NULL OR e.type = :event_type)
  AND (:outcome::text IS NULL OR e.outcome = :outcome)
  AND (:since::timestamptz IS NULL OR e.created_at >= :since)
  AND (:until::timestamptz IS NULL OR e.created_at < :until)
  AND (:after_event_id::text IS NULL
       OR (e.created_at, e.event_id) < (:after_created_at::timestamptz, :after_event_id))
ORDER BY e.created_at DESC, e.event_id DESC
LIMIT :limit;

-- outcome_counts: archived events per outcome, applied since a time
SELECT outcome, count(*) AS events FROM events WHERE applied_at >= :since
GROUP BY outcome ORDER BY outcome;

-- search_orders: orders by filter, most recently changed first, a page after the cursor
SELECT id, status, amount, currency, customer_key, livemode, updated_at FROM orders
WHERE (:status::text IS NULL OR status = :status)
  AND (:customer::text IS NULL OR id IN (
           SELECT order_id FROM order_customers
           WHERE term IN (btrim(:customer), lower(btrim(:customer)))))
  AND (:after_id::text IS NULL OR (updated_at, id) < (:after_updated_at::timestamptz, :after_id))
ORDER BY updated_at DESC, id DESC
LIMIT :limit;

-- order_postings: an order's ledger transactions (of one mode) with their entries, oldest first
SELECT t.id, t.business_key, t.kind, t.charge_id, t.currency, t.event_id,
       t.recorded_at AS created_at, t.effective_at, coalesce(t.occurred_at, t.effective_at) AS occurred_at,
       jsonb_agg(jsonb_build_object('account', e.account, 'amount', e.amount) ORDER BY e.id)
           AS entries
FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
WHERE t.order_id = :order_id AND t.livemode = :livemode
GROUP BY t.id ORDER BY t.recorded_at, t.id;

-- outbox_messages: fulfillment messages by id (one lookup each), with when they went out
SELECT message_id, routing_key, created_at, sent_at FROM outbox
WHERE message_id = ANY(:message_ids::text[]) ORDER BY id;

-- outcome_descriptions: what each archive outcome means
SELECT name, description FROM event_outcomes ORDER BY name;
