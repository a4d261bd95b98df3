-- Store first, judge later: a signed body that is not a usable event is archived `invalid`, with
-- the reason naming the field. Its key (event_id) is bounded (core/event.py: Conekta's id, or a
-- sha256 of an odd id or of the body); the event's own id, when it is not the key, is kept here.
INSERT INTO event_outcomes (name, description) VALUES
    ('invalid', 'signed, but not a usable event: kept with the reason, replayable after a fix');

ALTER TABLE events
    ADD COLUMN original_id text,
    ADD COLUMN reason text,
    -- The key is bounded by the code; the database says so too (a btree entry holds ~2.7 kB).
    ADD CONSTRAINT events_event_id_length CHECK (octet_length(event_id) <= 255);

CREATE INDEX events_invalid_created_at_idx ON events (created_at) WHERE outcome = 'invalid';
