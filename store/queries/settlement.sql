-- Settlement (issue 23): Conekta's transactions, transfers and balance snapshots as `settle pull`
-- fetched them, bank statements as `bank import` read them, what the ledger holds for the
-- matching (domain/settlement.py), and the checks of `settle verify`.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- settle_upsert_transactions: Conekta's transactions, raw as fetched now (first_seen_at kept);
-- returns the ones never seen before
INSERT INTO conekta_transactions (id, livemode, type, status, amount, fee, net, charge_id,
                                  currency, created_at, raw)
SELECT * FROM unnest(:id::text[], :livemode::boolean[], :type::text[], :status::text[],
                     :amount::bigint[], :fee::bigint[], :net::bigint[], :charge_id::text[],
                     :currency::text[], :created_at::timestamptz[], :raw::jsonb[])
ORDER BY 1, 2
ON CONFLICT (id, livemode) DO UPDATE SET type = EXCLUDED.type, status = EXCLUDED.status,
    amount = EXCLUDED.amount, fee = EXCLUDED.fee, net = EXCLUDED.net,
    charge_id = EXCLUDED.charge_id, currency = EXCLUDED.currency, raw = EXCLUDED.raw,
    updated_at = now()
    WHERE conekta_transactions.raw IS DISTINCT FROM EXCLUDED.raw
RETURNING id, (xmax = 0) AS new;

-- settle_upsert_transfers: Conekta's transfers, raw as fetched now; returns the ones new
INSERT INTO conekta_transfers (id, livemode, amount, currency, status, statement_reference,
                               created_at, raw)
SELECT * FROM unnest(:id::text[], :livemode::boolean[], :amount::bigint[], :currency::text[],
                     :status::text[], :statement_reference::text[],
                     :created_at::timestamptz[], :raw::jsonb[])
ORDER BY 1, 2
ON CONFLICT (id, livemode) DO UPDATE SET amount = EXCLUDED.amount,
    currency = EXCLUDED.currency, status = EXCLUDED.status,
    statement_reference = EXCLUDED.statement_reference, raw = EXCLUDED.raw, updated_at = now()
    WHERE conekta_transfers.raw IS DISTINCT FROM EXCLUDED.raw
RETURNING id, (xmax = 0) AS new;

-- settle_insert_balance: a snapshot of GET /balance in the API key's mode
INSERT INTO conekta_balances (livemode, raw) VALUES (:livemode::boolean, :raw::jsonb)
RETURNING id, taken_at;

-- settle_pull_try_lock: one `settle pull` at a time across workers and commands (session lock)
SELECT pg_try_advisory_lock(:key::bigint);

-- settle_pull_unlock: let the next pull run
SELECT pg_advisory_unlock(:key::bigint);

-- settle_watermark: the newest created_at a pull has seen (NULL: never pulled)
SELECT seen_to FROM settle_watermarks WHERE kind = :kind AND livemode = :livemode;

-- settle_advance_watermark: a pull saw records up to :seen_to (never moves back)
INSERT INTO settle_watermarks (kind, livemode, seen_to)
VALUES (:kind::text, :livemode::boolean, :seen_to::timestamptz)
ON CONFLICT (kind, livemode) DO UPDATE
    SET seen_to = greatest(settle_watermarks.seen_to, EXCLUDED.seen_to), updated_at = now();

-- settle_transactions: every stored Conekta transaction (one mode, or both when null)
SELECT id, livemode, type, status, amount, fee, net, charge_id, currency, created_at,
       first_seen_at
FROM conekta_transactions
WHERE :livemode::boolean IS NULL OR livemode = :livemode
ORDER BY created_at, id;

-- settle_transfers: every stored transfer (one mode, or both when null)
SELECT id, livemode, amount, currency, status, statement_reference, created_at, first_seen_at
FROM conekta_transfers
WHERE :livemode::boolean IS NULL OR livemode = :livemode
ORDER BY created_at, id;

-- settle_bank_lines: every imported bank line with its statement's account
SELECT l.id, s.account, l.date, l.amount, l.currency, l.reference, l.description,
       l.line_number, s.id AS statement_id
FROM bank_lines l JOIN bank_statements s ON s.id = l.statement_id
ORDER BY l.date, l.id;

-- settle_charge_books: per paid charge, what the ledger holds: its payment, the fee and IVA
-- booked on it (inside an older payment posting or as postings of their own), whether its fee
-- key is posted
SELECT c.livemode, c.id, c.order_id, c.amount, c.currency, c.customer_key, c.fee, c.paid_at,
       (SELECT t.amount FROM ledger_transactions t
        WHERE t.charge_id = c.id AND t.livemode = c.livemode AND t.kind = 'payment'
        LIMIT 1) AS payment,
       (SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t
        JOIN ledger_entries e ON e.transaction_id = t.id
        WHERE t.charge_id = c.id AND t.livemode = c.livemode
          AND t.kind IN ('payment', 'fee', 'fee_adjust')
          AND e.account IN ('conekta:fees', 'tax:vat_on_fees'))::bigint AS fee_booked,
       EXISTS (SELECT 1 FROM ledger_transactions t
               WHERE t.business_key = 'fee:' || c.order_id || ':' || c.id
                 AND t.livemode = c.livemode) AS fee_key_posted
FROM charges c WHERE c.id = ANY(:charge_ids::text[]);

-- settle_refund_postings: the refund postings (and their reversals) of these charges
SELECT livemode, charge_id, business_key, kind, amount, effective_at
FROM ledger_transactions
WHERE charge_id = ANY(:charge_ids::text[]) AND kind IN ('refund', 'refund_reversed');

-- settle_landed: of these transfers' landed keys (payout:<id>:landed), those posted, each with
-- the bank line that showed it (one index lookup per key: no scan of the ledger)
SELECT t.livemode, split_part(t.business_key, ':', 2) AS transfer_id,
       split_part(t.event_id, ':', 2)::bigint AS line_id
FROM unnest(:keys::text[]) AS wanted (key)
CROSS JOIN LATERAL (SELECT livemode, business_key, event_id FROM ledger_transactions
                    WHERE business_key = wanted.key AND kind = 'payout_landed') AS t;

-- settle_lock: one `settle match --apply` at a time (held until its transaction ends)
SELECT pg_advisory_xact_lock(:key::bigint);

-- settle_snapshot: a dry run reads one consistent snapshot and writes nothing (first statement)
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- settle_set_targets: chargebacks whose target Conekta's chargeback transaction says
UPDATE chargebacks c SET conekta_amount = t.amount, amount = t.amount, updated_at = now()
FROM unnest(:id::text[], :livemode::boolean[], :amount::bigint[]) AS t (id, livemode, amount)
WHERE c.id = t.id AND c.livemode = t.livemode;

-- settle_learn_fees: a charge's fee, learnt from its capture when no event carried it
UPDATE charges c SET fee = coalesce(c.fee, t.fee), updated_at = now()
FROM unnest(:id::text[], :livemode::boolean[], :fee::bigint[]) AS t (id, livemode, fee)
WHERE c.id = t.id AND c.livemode = t.livemode;

-- bank_statement_by_hash: a statement already imported from a file with these bytes
SELECT id, account, file_name, imported_at, imported_by, lines FROM bank_statements
WHERE file_sha256 = :file_sha256;

-- insert_bank_statement: a statement, once per file hash (NULL: imported already)
INSERT INTO bank_statements (account, file_sha256, file_name, first_date, last_date, lines,
                             imported_by)
VALUES (:account::text, :file_sha256::text, :file_name::text, :first_date::date,
        :last_date::date, :lines::integer, :imported_by::text)
ON CONFLICT (file_sha256) DO NOTHING
RETURNING id;

-- insert_bank_lines: a statement's lines
INSERT INTO bank_lines (statement_id, line_number, date, amount, currency, reference, description)
SELECT :statement_id::bigint, * FROM unnest(:line_number::integer[], :date::date[],
                                             :amount::bigint[], :currency::text[],
                                             :reference::text[], :description::text[]);

-- settle_statements: the imported statements, newest first
SELECT id, account, file_name, first_date, last_date, lines, imported_at, imported_by
FROM bank_statements ORDER BY imported_at DESC, id DESC;

-- settle_last_balances: the newest balance snapshot of each mode
SELECT DISTINCT ON (livemode) id, livemode, taken_at, raw FROM conekta_balances
ORDER BY livemode, taken_at DESC, id DESC;

-- settle_held_at: per currency, conekta:receivable + conekta:disputed of one mode as of an
-- instant (money that moved by then: its own date, occurred_at, when booked later)
SELECT e.currency, sum(e.amount)::bigint AS held
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE t.livemode = :livemode AND e.account IN ('conekta:receivable', 'conekta:disputed')
  AND coalesce(t.occurred_at, t.effective_at) <= :at
GROUP BY e.currency;

-- settle_ledger_without_transaction: payments, refunds and chargebacks of one mode older than
-- :before whose Conekta transaction is not stored (refunds counted per charge and amount)
SELECT 'payment' AS kind, t.business_key, t.charge_id, t.amount, t.effective_at
FROM ledger_transactions t
WHERE t.livemode = :livemode AND t.kind = 'payment' AND t.effective_at < :before
  AND NOT EXISTS (SELECT 1 FROM conekta_transactions x WHERE x.charge_id = t.charge_id
                  AND x.livemode = t.livemode AND x.type = 'capture')
UNION ALL
SELECT 'refund', r.business_key, r.charge_id, r.amount, r.effective_at
FROM (SELECT t.*, row_number() OVER (PARTITION BY t.charge_id, t.amount
                                     ORDER BY t.effective_at, t.business_key) AS n
      FROM ledger_transactions t
      WHERE t.livemode = :livemode AND t.kind = 'refund') r
WHERE r.effective_at < :before
  AND r.n > (SELECT count(*) FROM conekta_transactions x WHERE x.charge_id = r.charge_id
             AND x.livemode = r.livemode AND x.type = 'refund' AND abs(x.amount) = r.amount)
UNION ALL
SELECT 'chargeback', t.business_key, t.charge_id, t.amount, t.effective_at
FROM ledger_transactions t
WHERE t.livemode = :livemode AND t.kind = 'chargeback_opened' AND t.effective_at < :before
  AND NOT EXISTS (SELECT 1 FROM conekta_transactions x WHERE x.charge_id = t.charge_id
                  AND x.livemode = t.livemode AND x.type = 'chargeback')
ORDER BY 5, 2;
