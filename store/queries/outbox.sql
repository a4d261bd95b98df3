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

-- fulfillment_replay_counts: published messages a replay to one subscriber selects, per type
-- (written in [since, until); coalesce, not "IS NULL OR", keeps partition pruning possible;
-- an order's ids are ful_<order>_<24 hex>)
SELECT routing_key, count(*) AS count FROM outbox
WHERE sent_at IS NOT NULL
  AND created_at >= coalesce(:since::timestamptz, '-infinity')
  AND created_at < coalesce(:until::timestamptz, 'infinity')
  AND (:event_type::text IS NULL OR routing_key = :event_type)
  AND (:order_prefix::text IS NULL OR (starts_with(message_id, :order_prefix)
       AND length(message_id) = length(:order_prefix) + 24))
GROUP BY routing_key;

-- fulfillment_replay_page: the next of those messages after an id, in the order of the changes
SELECT id, message_id, routing_key, body FROM outbox
WHERE sent_at IS NOT NULL
  AND created_at >= coalesce(:since::timestamptz, '-infinity')
  AND created_at < coalesce(:until::timestamptz, 'infinity')
  AND (:event_type::text IS NULL OR routing_key = :event_type)
  AND (:order_prefix::text IS NULL OR (starts_with(message_id, :order_prefix)
       AND length(message_id) = length(:order_prefix) + 24))
  AND id > :after_id
ORDER BY id LIMIT :limit;
