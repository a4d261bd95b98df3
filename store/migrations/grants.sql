-- What the runtime role may do, re-applied by `migrate` after every run (idempotent, declarative:
-- everything is revoked and granted again in one transaction, so a line removed here is a
-- privilege removed). The services log in as a member of conekta_runtime; `migrate` and
-- `archive prune` connect as the owner of the tables.
--
-- A new table needs one line below, even if it grants nothing (a test checks every table is named).
-- Never: DDL (only the owner can ALTER, DROP or disable a trigger), TRUNCATE, UPDATE or DELETE
-- of ledger rows and archived bodies (retention runs as the owner).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'conekta_runtime') THEN
        CREATE ROLE conekta_runtime NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;  -- another database's migrate won
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'role conekta_runtime is missing and % may not create it', current_user
            USING HINT = 'create it (NOLOGIN) as an administrator, or declare it in the CNPG '
                         'Cluster''s managed roles; the services log in as a member of it';
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO conekta_runtime',
                   current_database());
END $$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO conekta_runtime;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM conekta_runtime;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM conekta_runtime;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO conekta_runtime;

-- table                    privileges
GRANT SELECT                 ON schema_migrations   TO conekta_runtime;  -- workers wait for them
GRANT SELECT                 ON event_outcomes      TO conekta_runtime;
-- bodies and requests insert-only; a replay turns a purge tombstone, an `ignored` or an
-- `invalid` event (judged again: its reason too) into an outcome; a purge of `invalid` events
-- says why (note)
GRANT SELECT, INSERT, UPDATE (outcome, order_id, applied_at, reason, note)
                             ON events              TO conekta_runtime;
GRANT SELECT, INSERT         ON event_ids           TO conekta_runtime;  -- dedupe; prune forgets old ones
GRANT SELECT, INSERT, UPDATE ON orders              TO conekta_runtime;
GRANT SELECT, INSERT, UPDATE (status, last_event_id, last_event_created_at, updated_at,
                              conekta_status, amount, opened_at)
                             ON chargebacks         TO conekta_runtime;
-- paid charges: the fee once known; refunds: their status as Conekta last said
GRANT SELECT, INSERT, UPDATE (fee, updated_at) ON charges TO conekta_runtime;
GRANT SELECT, INSERT, UPDATE (status, last_event_id, updated_at)
                             ON refunds             TO conekta_runtime;
GRANT SELECT, INSERT, UPDATE (event_id, flagged_at, resolved_at)
                             ON reconcile_flags     TO conekta_runtime;
GRANT SELECT, INSERT         ON ledger_transactions TO conekta_runtime;
GRANT SELECT, INSERT         ON ledger_entries      TO conekta_runtime;  -- append-only
GRANT SELECT, INSERT, UPDATE (balance) ON balances  TO conekta_runtime;
GRANT SELECT, INSERT         ON accounts            TO conekta_runtime;  -- declared, never retyped
GRANT SELECT, INSERT         ON ledger_closes       TO conekta_runtime;  -- a closed month stays closed
GRANT SELECT, INSERT, UPDATE (sent_at) ON outbox    TO conekta_runtime;
GRANT SELECT, INSERT, UPDATE (finished_at, status, livemode, counts, error)
                             ON reconcile_runs      TO conekta_runtime;
GRANT SELECT, INSERT         ON reconcile_backfills TO conekta_runtime;
GRANT SELECT, INSERT, UPDATE (kind, reason, attempts, last_failed_at, headers, dead_at, status,
                              settled_at, settled_by, settle_reason)
                             ON dead_letters        TO conekta_runtime;  -- bodies kept as they came
GRANT SELECT, INSERT         ON audit_log           TO conekta_runtime;  -- append-only
-- the ops console: users (add-user sets role and password), sessions, failed logins
GRANT SELECT, INSERT, UPDATE (role, password_hash, updated_at)
                             ON console_users       TO conekta_runtime;
GRANT SELECT, INSERT, DELETE ON console_sessions    TO conekta_runtime;
GRANT SELECT, INSERT, DELETE ON console_login_failures TO conekta_runtime;
