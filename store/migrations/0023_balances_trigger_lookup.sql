-- Issue 26: the balances trigger (0017) read every posting ever made, once per batch.
--
-- It joined the statement's new entries to ledger_transactions for each entry's mode. A trigger's
-- plan is cached with the estimates of the day it was made: made while the ledger is small, it is
-- a hash join over a sequential scan of the whole ledger, and stays one while the ledger grows
-- (until an ANALYZE, which never comes with autovacuum off, as on the benchmark's machine): the
-- cost of every batch grew with the ledger (8.5 ms of a batch of 180 payments at 20,000 postings,
-- found with auto_explain). Each entry's mode is now looked up by the primary key, whatever
-- the estimates: the same sums, in the same lock order, at a cost that does not grow.
CREATE OR REPLACE FUNCTION ledger_entries_to_balances() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO balances (account, currency, livemode, balance)
    SELECT e.account, e.currency, e.livemode, sum(e.amount)
    FROM (SELECT i.account, i.currency, i.amount,
                 (SELECT t.livemode FROM ledger_transactions t WHERE t.id = i.transaction_id)
                     AS livemode
          FROM new_entries i) AS e
    GROUP BY e.account, e.currency, e.livemode ORDER BY 1, 2, 3
    ON CONFLICT (account, currency, livemode)
        DO UPDATE SET balance = balances.balance + EXCLUDED.balance;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION ledger_entries_to_balances() FROM PUBLIC;
