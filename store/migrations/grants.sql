-- What each runtime role may do, re-applied by `migrate` after every run (idempotent, declarative:
-- everything is revoked and granted again in one transaction, so a line removed here is a
-- privilege removed). README "Roles and permissions" lists each role with the commands using it.
--
--   owner            owns the tables: `migrate`, `archive prune/restore/sign`, `console add-user /
--                    disable-user / remove-user` connect as it (no grants needed)
--   conekta_worker   the daemon (`work`): consumers, outbox relay, reconcile
--   conekta_console  the ops console (`console`): reads, replays, purges, its sessions
--   conekta_oncall   the on-call CLI (events/dead-letters/invalid replay and purge, reconcile,
--                    orders verify/record, ledger and stats reports)
-- Services log in as a member of one of them (deploy/ creates the logins).
-- conekta_runtime, the one role of earlier versions, keeps nothing: a login still in it fails
-- loudly instead of keeping the worker's reach to console users.
--
-- A new table needs one line below, even if it grants nothing (a test checks every table is named).
-- Never: DDL (only the owner can ALTER, DROP or disable a trigger), TRUNCATE, UPDATE or DELETE
-- of ledger rows and archived bodies (retention runs as the owner), UPDATE of balances (a trigger
-- owned by the owner keeps them: 0017), a write to console_users.

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['conekta_worker', 'conekta_console', 'conekta_oncall'] LOOP
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN', name);
            END IF;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- another database's migrate won
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % is missing and % may not create it', name, current_user
                    USING HINT = 'create it (NOLOGIN) as an administrator, or declare it in the '
                                 'CNPG Cluster''s managed roles; the services log in as a member';
        END;
    END LOOP;
    -- The runtime roles, and conekta_runtime while it exists (never made again): all revoked,
    -- then granted below.
    FOR name IN SELECT rolname FROM pg_roles WHERE rolname IN
        ('conekta_runtime', 'conekta_worker', 'conekta_console', 'conekta_oncall')
    LOOP
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', name);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', name);
        EXECUTE format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), name);
        EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I', name);
    END LOOP;
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO conekta_worker, conekta_console, '
                   'conekta_oncall', current_database());
END $$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO conekta_worker, conekta_console, conekta_oncall;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO conekta_worker, conekta_console, conekta_oncall;

-- The apply path (consumers, and on-call replays that apply events again), reconcile and the
-- dead letters are shared by the three; what differs is below.
-- table                    privileges
GRANT SELECT                 ON schema_migrations   TO conekta_worker, conekta_console, conekta_oncall;  -- workers wait for them
GRANT SELECT                 ON event_outcomes      TO conekta_worker, conekta_console, conekta_oncall;
-- bodies and requests insert-only; a replay turns a purge tombstone, an `ignored` or an
-- `invalid` event (judged again: its reason too) into an outcome, with the provenance of the replay
GRANT SELECT, INSERT, UPDATE (outcome, order_id, applied_at, reason, provenance)
                             ON events              TO conekta_worker, conekta_console, conekta_oncall;
-- a purge of `invalid` events says why (note): people only
GRANT UPDATE (note)          ON events              TO conekta_console, conekta_oncall;
GRANT SELECT, INSERT         ON event_ids           TO conekta_worker, conekta_console, conekta_oncall;  -- dedupe; prune forgets old ones
GRANT SELECT, INSERT, UPDATE ON orders              TO conekta_worker, conekta_console, conekta_oncall;
GRANT SELECT, INSERT         ON order_customers     TO conekta_worker, conekta_console, conekta_oncall;  -- the archive statement
GRANT SELECT, INSERT, UPDATE (status, last_event_id, last_event_created_at, updated_at,
                              conekta_status, amount, opened_at)
                             ON chargebacks         TO conekta_worker, conekta_console, conekta_oncall;
-- paid charges: the fee once known; refunds: their status as Conekta last said
GRANT SELECT, INSERT, UPDATE (fee, updated_at) ON charges TO conekta_worker, conekta_console, conekta_oncall;
GRANT SELECT, INSERT, UPDATE (status, last_event_id, updated_at)
                             ON refunds             TO conekta_worker, conekta_console, conekta_oncall;
GRANT SELECT, INSERT, UPDATE (event_id, flagged_at, resolved_at)
                             ON reconcile_flags     TO conekta_worker, conekta_console, conekta_oncall;
GRANT SELECT, INSERT         ON ledger_transactions TO conekta_worker, conekta_console, conekta_oncall;
GRANT SELECT, INSERT         ON ledger_entries      TO conekta_worker, conekta_console, conekta_oncall;  -- append-only
GRANT SELECT                 ON balances            TO conekta_worker, conekta_console, conekta_oncall;  -- the trigger keeps them
GRANT SELECT, INSERT         ON accounts            TO conekta_worker, conekta_console, conekta_oncall;  -- declared, never retyped
GRANT SELECT                 ON ledger_closes       TO conekta_worker, conekta_console, conekta_oncall;  -- `ledger close`: below
GRANT INSERT                 ON ledger_closes       TO conekta_oncall;  -- a closed month stays closed
GRANT SELECT, INSERT, UPDATE (sent_at) ON outbox    TO conekta_worker, conekta_console, conekta_oncall;
GRANT SELECT, INSERT, UPDATE (finished_at, status, livemode, counts, error)
                             ON reconcile_runs      TO conekta_worker, conekta_console, conekta_oncall;
GRANT SELECT, INSERT         ON reconcile_backfills TO conekta_worker, conekta_console, conekta_oncall;
-- events in flight after a failure (0020): the worker records each; archiving an event (a replay
-- too) or storing its dead letter removes its row
GRANT SELECT, INSERT, UPDATE, DELETE ON event_failures TO conekta_worker;
GRANT SELECT, DELETE         ON event_failures      TO conekta_console, conekta_oncall;
-- bodies kept as they came; the consumer stores and updates a failing message's open row
GRANT SELECT, INSERT, UPDATE (kind, reason, attempts, last_failed_at, headers, dead_at)
                             ON dead_letters        TO conekta_worker, conekta_console, conekta_oncall;
-- settling one (replayed or purged, by whom and why): people only
GRANT UPDATE (status, settled_at, settled_by, settle_reason)
                             ON dead_letters        TO conekta_console, conekta_oncall;
GRANT SELECT, INSERT         ON audit_log           TO conekta_console, conekta_oncall;  -- append-only; the daemon acts for no one
-- the ops console: users are read (a login, a session's user), written by the owner only
GRANT SELECT (name, role, password_hash, disabled_at, password_changed_at)
                             ON console_users       TO conekta_console;
GRANT SELECT, INSERT, DELETE ON console_sessions    TO conekta_console;
GRANT SELECT, INSERT, DELETE ON console_login_failures TO conekta_console;
-- settlement (0021): `settle pull` (the worker, on schedule, or on call by hand) writes Conekta's
-- records; `bank import` and `settle match --apply` are people's (on call); the console reads
GRANT SELECT, INSERT, UPDATE (type, status, amount, fee, net, charge_id, currency, raw, updated_at)
                             ON conekta_transactions TO conekta_worker, conekta_oncall;
GRANT SELECT, INSERT, UPDATE (amount, currency, status, statement_reference, raw, updated_at)
                             ON conekta_transfers   TO conekta_worker, conekta_oncall;
GRANT SELECT, INSERT         ON conekta_balances    TO conekta_worker, conekta_oncall;
GRANT SELECT, INSERT, UPDATE (seen_to, updated_at) ON settle_watermarks TO conekta_worker, conekta_oncall;
GRANT SELECT                 ON conekta_transactions, conekta_transfers, conekta_balances,
                                settle_watermarks   TO conekta_console;
GRANT SELECT, INSERT         ON bank_statements     TO conekta_oncall;  -- imported once, never changed
GRANT SELECT, INSERT         ON bank_lines          TO conekta_oncall;
GRANT SELECT                 ON bank_statements, bank_lines TO conekta_worker, conekta_console;
-- `settle match --apply`: a chargeback's target as Conekta's chargeback transaction says it
GRANT UPDATE (conekta_amount) ON chargebacks        TO conekta_oncall;
