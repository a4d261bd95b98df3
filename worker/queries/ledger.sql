-- The double-entry ledger: postings, entries, balances, and the checks of `ledger verify`.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

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

-- verify_paid_orders_without_payment: paid orders of a non-zero amount with no payment posting
SELECT o.id FROM orders o
WHERE o.status = 'paid' AND o.amount > 0
  AND NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.order_id = o.id AND t.kind = 'payment');

-- verify_currency_totals: per currency, all balances must sum to zero
SELECT currency, sum(balance)::bigint AS total FROM balances GROUP BY currency HAVING sum(balance) <> 0;
