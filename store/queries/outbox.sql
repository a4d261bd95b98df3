-- The fulfillment outbox: written with the ledger, published by the relay.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- insert_outbox: fulfillment messages to publish after commit, skipping ids already there (the
-- orders' row locks serialise every writer of one order's messages; months pruned are forgotten)
INSERT INTO outbox (message_id, routing_key, body)
SELECT DISTINCT ON (m.message_id) m.*
FROM unnest(:message_id::text[], :routing_key::text[], :body::bytea[])
    AS m (message_id, routing_key, body)
WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.message_id);

-- lock_outbox_relay: become the one relay publishing now (until the transaction ends), or not;
-- one at a time keeps the messages of each order in the order of its changes, across workers
SELECT pg_try_advisory_xact_lock(:key);

-- claim_outbox: unsent messages, oldest first
SELECT id, message_id, routing_key, body FROM outbox
WHERE sent_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE;

-- mark_outbox_sent: record that the broker confirmed these messages
UPDATE outbox SET sent_at = now() WHERE id = ANY(:ids::bigint[]);

-- outbox_backlog: how many fulfillment messages wait to be published
SELECT count(*) FROM outbox WHERE sent_at IS NULL;
