-- `archive prune` forgets the ids of events archived before CONEKTA_INGEST_DEDUPE_MONTHS whose
-- archived rows are gone (their month pruned): event_ids no longer grows forever. This index
-- finds them. (On a large table it takes a while and holds off inserts meanwhile: README,
-- upgrades.)
CREATE INDEX event_ids_archived_at_idx ON event_ids (archived_at);
