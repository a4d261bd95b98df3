-- Outcomes the archive can record live in a table, not in a CHECK list: a new outcome is one
-- INSERT in its own migration (domain/outcome.py holds the same names; a test compares them).
CREATE TABLE event_outcomes (
    name         text PRIMARY KEY,
    description  text NOT NULL
);
INSERT INTO event_outcomes (name, description) VALUES
    ('applied', 'the order changed'),
    ('duplicate', 'the same change as already applied, by another event'),
    ('stale', 'older than, or overruled by, what the order already shows'),
    ('ignored', 'no handler for this type: archived, replayable later');

ALTER TABLE events DROP CONSTRAINT events_outcome_check;
ALTER TABLE events ADD CONSTRAINT events_outcome_fkey
    FOREIGN KEY (outcome) REFERENCES event_outcomes (name);
