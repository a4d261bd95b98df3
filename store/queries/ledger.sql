-- The double-entry ledger: postings, entries, balances, and the checks of `ledger verify`.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- insert_ledger_transactions: new postings, each with its provenance (domain/provenance.py);
-- returns only those not posted before (per mode). :postings is one JSON array of rows in the
-- order of store/apply.POSTING_COLUMNS (sql.rows_json: one text for the driver to send, where
-- typed arrays cost it a check per element)
INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency, livemode,
                                 event_id, effective_at, amount, occurred_at, provenance)
SELECT p ->> 0, p ->> 1, p ->> 2, p ->> 3, p ->> 4, (p ->> 5)::boolean, p ->> 6,
       (p ->> 7)::timestamptz, (p ->> 8)::bigint, (p ->> 9)::timestamptz, p ->> 10
FROM jsonb_array_elements(:postings::jsonb) AS p
ORDER BY 1, 6
ON CONFLICT (business_key, livemode) DO NOTHING
RETURNING id, business_key, livemode;

-- declare_accounts: accounts of the chart (domain/accounts.py types them), new ones inserted in
-- name order (the same lock order in every transaction)
INSERT INTO accounts (name, type, normal_side)
SELECT * FROM unnest(:account::text[], :type::text[], :normal_side::text[]) ORDER BY 1
ON CONFLICT (name) DO NOTHING;

-- insert_entries: entries (of declared accounts); the trigger ledger_entries_to_balances (0017,
-- the owner's) adds their sum per account and mode to balances in one fixed lock order: no
-- runtime role updates balances. :entries is one JSON array of
-- [transaction_id, account, currency, amount] (as insert_ledger_transactions)
INSERT INTO ledger_entries (transaction_id, account, currency, amount)
SELECT (e ->> 0)::bigint, e ->> 1, e ->> 2, (e ->> 3)::bigint
FROM jsonb_array_elements(:entries::jsonb) AS e;

-- booked_keys: which of these business keys are posted already, in which mode
-- One index lookup per key (as lock_orders: `= ANY(...)` turns into a seq scan on young stats).
SELECT t.livemode, t.business_key
FROM unnest(:keys::text[]) AS wanted (key)
CROSS JOIN LATERAL (SELECT livemode, business_key FROM ledger_transactions
                    WHERE business_key = wanted.key) AS t;

-- list_balances: every balance (one mode, or both when :livemode is null), signed to its account's
-- normal side, with the account's type
SELECT b.account, a.type, b.currency, b.livemode,
       CASE WHEN a.normal_side = 'credit' THEN -b.balance ELSE b.balance END AS balance
FROM balances b JOIN accounts a ON a.name = b.account
WHERE :livemode::boolean IS NULL OR b.livemode = :livemode
ORDER BY b.livemode DESC, b.account, b.currency;

-- balances_at: balances as of a moment (money that moved at or before it, by effective_at), from
-- the entries, signed to each account's normal side as the running balances are
SELECT e.account, a.type, e.currency, t.livemode,
       (CASE WHEN a.normal_side = 'credit' THEN -1 ELSE 1 END * sum(e.amount))::bigint AS balance
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
JOIN accounts a ON a.name = e.account
WHERE t.effective_at <= :at AND (:livemode::boolean IS NULL OR t.livemode = :livemode)
GROUP BY e.account, a.type, a.normal_side, e.currency, t.livemode
ORDER BY t.livemode DESC, e.account, e.currency;

-- ledger_entries: entries with their transaction by when the money moved (effective_at, then entry id), a page after the cursor; the CLI and the console read them all through this one query
-- (a movement of a closed month is booked on the first open instant; occurred_at: its own date)
SELECT e.id, t.effective_at, t.recorded_at, t.livemode, t.business_key, t.kind, t.order_id,
       t.charge_id, t.event_id, e.account, e.currency, e.amount,
       coalesce(t.occurred_at, t.effective_at) AS occurred_at
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE (t.effective_at, e.id) > (:after_effective_at, :after_id)
  AND (:account::text IS NULL OR e.account = :account)
  AND (:currency::text IS NULL OR e.currency = :currency)
  AND (:since::timestamptz IS NULL OR t.effective_at >= :since)
  AND (:until::timestamptz IS NULL OR t.effective_at < :until)
  AND (:livemode::boolean IS NULL OR t.livemode = :livemode)
ORDER BY t.effective_at, e.id
LIMIT :limit;

-- verify_unbalanced_transactions: ledger transactions whose entries do not sum to zero
SELECT t.id, t.business_key, coalesce(sum(e.amount), 0)::bigint AS total, count(e.id) AS entries
FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
GROUP BY t.id HAVING coalesce(sum(e.amount), 0) <> 0 OR count(e.id) < 2;

-- verify_balances_match_entries: balances that differ from the sum of their entries
SELECT coalesce(b.account, e.account) AS account, coalesce(b.currency, e.currency) AS currency,
       coalesce(b.livemode, e.livemode) AS livemode, b.balance AS stored,
       coalesce(e.total, 0)::bigint AS from_entries
FROM balances b
FULL JOIN (SELECT e.account, e.currency, t.livemode, sum(e.amount) AS total
           FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
           GROUP BY 1, 2, 3) e
     ON e.account = b.account AND e.currency = b.currency AND e.livemode = b.livemode
WHERE b.balance IS DISTINCT FROM coalesce(e.total, 0);

-- verify_one_payment_per_charge: charges with more than one payment posting
SELECT charge_id, livemode, count(*) AS postings FROM ledger_transactions
WHERE kind = 'payment' GROUP BY charge_id, livemode HAVING count(*) > 1;

-- verify_refunds_within_payment: charges refunded more than they paid (or with no payment); a
-- reversed refund (it failed after it posted) gave its money back
SELECT r.charge_id, r.livemode, r.refunded, p.amount AS paid
FROM (SELECT charge_id, livemode,
             sum(CASE WHEN kind = 'refund' THEN amount ELSE -amount END) AS refunded
      FROM ledger_transactions WHERE kind IN ('refund', 'refund_reversed') GROUP BY 1, 2) r
LEFT JOIN ledger_transactions p
       ON p.kind = 'payment' AND p.charge_id = r.charge_id AND p.livemode = r.livemode
WHERE p.id IS NULL OR r.refunded > p.amount;

-- verify_disputed_matches_open_chargebacks: per currency and mode, conekta:disputed equals the
-- chargebacks still open (or under review)
SELECT coalesce(b.currency, c.currency) AS currency, coalesce(b.livemode, c.livemode) AS livemode,
       coalesce(b.balance, 0) AS disputed, coalesce(c.total, 0)::bigint AS open_chargebacks
FROM (SELECT currency, livemode, balance FROM balances WHERE account = 'conekta:disputed') b
FULL JOIN (SELECT currency, livemode, sum(amount) AS total FROM chargebacks
           WHERE status IN ('open', 'under_review') GROUP BY 1, 2) c
     ON c.currency = b.currency AND c.livemode = b.livemode
WHERE coalesce(b.balance, 0) <> coalesce(c.total, 0);

-- verify_money_on_unpaid_orders: money posted on orders that were never paid (settlement's
-- postings of no order, a transfer or an adjustment, are no order's)
SELECT t.order_id, o.status, t.business_key FROM ledger_transactions t
LEFT JOIN orders o ON o.id = t.order_id AND o.livemode = t.livemode
WHERE t.order_id IS NOT NULL
  AND (o.status IS NULL OR o.status NOT IN ('paid', 'partially_refunded', 'refunded'));

-- verify_paid_orders_without_payment: paid orders of a non-zero amount with no payment posting
SELECT o.id FROM orders o
WHERE o.status IN ('paid', 'partially_refunded', 'refunded') AND o.amount > 0
  AND NOT EXISTS (SELECT 1 FROM ledger_transactions t
                  WHERE t.order_id = o.id AND t.livemode = o.livemode AND t.kind = 'payment');

-- verify_currency_totals: per currency and mode, all balances must sum to zero
SELECT currency, livemode, sum(balance)::bigint AS total FROM balances GROUP BY currency, livemode
HAVING sum(balance) <> 0;

-- provenance_postings: postings after an id, oldest first, each with the archived event that
-- posted it (body, request and provenance; NULL when its month was pruned): `ledger verify
-- --provenance` checks each again; `settlement`: posted by `settle match` from a stored Conekta
-- transaction or transfer (api) or an imported bank line (statement)
SELECT t.id, t.business_key, t.kind, t.order_id, t.livemode, t.event_id, t.provenance,
       e.body, e.request, e.provenance AS event_provenance, e.event_id IS NOT NULL AS archived,
       CASE WHEN t.provenance = 'statement'
                THEN EXISTS (SELECT 1 FROM bank_lines l
                             WHERE 'bank_line:' || l.id = t.event_id)
            WHEN t.provenance = 'api' AND e.event_id IS NULL
                THEN EXISTS (SELECT 1 FROM conekta_transactions x
                             WHERE x.id = t.event_id AND x.livemode = t.livemode)
                  OR EXISTS (SELECT 1 FROM conekta_transfers x
                             WHERE x.id = t.event_id AND x.livemode = t.livemode)
            ELSE false END AS settlement
FROM ledger_transactions t
LEFT JOIN LATERAL (SELECT event_id, body, request, provenance FROM events
                   WHERE event_id = t.event_id LIMIT 1) e ON true
WHERE t.id > :after_id
ORDER BY t.id
LIMIT :limit;

-- confirming_events: archived events of these orders that could confirm an attested posting
-- (their bodies are verified again by the caller)
SELECT event_id, order_id, body, request, provenance FROM events
WHERE order_id = ANY(:order_ids::text[]) AND outcome <> 'unverified';
