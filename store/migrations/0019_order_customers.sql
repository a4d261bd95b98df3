-- Search by customer finds an order by every customer id, e-mail and name any of its events
-- carried (`orders.customer_key` keeps one: the id when there is one, else the e-mail).
-- Filled by a trigger on the archive, so every path that archives an order's event (the
-- worker, a replay, invalid events judged again, a restore) fills it; the first fill reads
-- every archived body once (minutes on a large archive: README, upgrades).
CREATE TABLE order_customers (
    term      text NOT NULL,  -- a customer id as Conekta wrote it; an e-mail or a name lower-cased
    order_id  text NOT NULL,
    PRIMARY KEY (term, order_id)
);

-- Only bodies the worker parsed (applied, duplicate, stale, other_mode: valid UTF-8 JSON); a
-- body with \u0000 cannot become jsonb and is skipped (its order keeps its customer_key).
CREATE FUNCTION order_customer_terms(body bytea) RETURNS TABLE (term text)
LANGUAGE sql STABLE AS $$
    WITH doc AS (
        SELECT CASE WHEN position('\u0000' IN convert_from(body, 'UTF8')) = 0
                    THEN convert_from(body, 'UTF8')::jsonb -> 'data' -> 'object' -> 'customer_info'
               END AS info
    )
    SELECT DISTINCT t.term
    FROM doc CROSS JOIN LATERAL (VALUES (btrim(info ->> 'customer_id')),
                                        (lower(btrim(info ->> 'email'))),
                                        (lower(btrim(info ->> 'name')))) AS t (term)
    WHERE jsonb_typeof(info) = 'object' AND t.term <> ''
$$;

CREATE FUNCTION remember_order_customers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_customers (term, order_id)
    SELECT DISTINCT t.term, n.order_id
    FROM new_rows n CROSS JOIN LATERAL order_customer_terms(n.body) AS t
    WHERE n.order_id IS NOT NULL
      AND n.outcome IN ('applied', 'duplicate', 'stale', 'other_mode')
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER events_order_customers_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION remember_order_customers();
-- An `invalid` event judged again and applied is an update of its archive row.
CREATE TRIGGER events_order_customers_update AFTER UPDATE ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION remember_order_customers();

INSERT INTO order_customers (term, order_id)
SELECT DISTINCT t.term, e.order_id
FROM events e CROSS JOIN LATERAL order_customer_terms(e.body) AS t
WHERE e.order_id IS NOT NULL AND e.outcome IN ('applied', 'duplicate', 'stale', 'other_mode')
ON CONFLICT DO NOTHING;
