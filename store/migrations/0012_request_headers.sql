-- What the archive keeps of a webhook's HTTP request: the peer address and its headers, without
-- credentials and bounded in size (core/request.py), as {"remote": ..., "headers": {name: value}}.
-- NULL for events archived before this version, and for events fetched from Conekta's Events API
-- (reconcile backfill: there was no request). Written once with the event, never updated
-- (grants.sql). Added to the partitioned parent, it reaches every month's partition.
ALTER TABLE events ADD COLUMN request jsonb;
