-- What archiving an event costs the database (issue 26: measured with EXPLAIN ANALYZE on a batch
-- of 256 realistic 3.4 KB order.paid bodies; bench/apply_only.py).
--
-- 1. Search by customer (0019) was filled by statement triggers on `events` that parsed every
--    archived body into jsonb twice (~150 us of database CPU per event, the largest single cost
--    of applying one). The writer now passes each order event's `customer_info` (a few hundred
--    bytes, from the body the worker already parsed) and the archive statement fills
--    order_customers itself (store/queries/archive.sql); a restore of an exported month reads
--    the bodies, as the first fill did (store/queries/retention.sql). The terms are the same:
--    customer_terms below is the one definition of them.
DROP TRIGGER events_order_customers_insert ON events;
DROP TRIGGER events_order_customers_update ON events;
DROP FUNCTION remember_order_customers();

CREATE FUNCTION customer_terms(info jsonb) RETURNS TABLE (term text)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT t.term
    FROM (VALUES (btrim(info ->> 'customer_id')),
                 (lower(btrim(info ->> 'email'))),
                 (lower(btrim(info ->> 'name')))) AS t (term)
    WHERE jsonb_typeof(info) = 'object' AND t.term <> ''
$$;

CREATE OR REPLACE FUNCTION order_customer_terms(body bytea) RETURNS TABLE (term text)
LANGUAGE sql STABLE AS $$
    SELECT t.term
    FROM (SELECT CASE WHEN position('\u0000' IN convert_from(body, 'UTF8')) = 0
                      THEN convert_from(body, 'UTF8')::jsonb -> 'data' -> 'object' -> 'customer_info'
                 END AS info) AS doc
    CROSS JOIN LATERAL customer_terms(doc.info) AS t
$$;

-- 2. Archiving an id seen before may revive its row (a purge tombstone, an `ignored` or `invalid`
--    event applied later): the statement looked for such rows with a scan of the whole current
--    month. Only rows of these outcomes can be revived, and they are few: a partial index finds
--    them whatever the month holds.
CREATE INDEX events_revivable_idx ON events (event_id) WHERE outcome IN ('purged', 'ignored', 'invalid');
