-- Reconciling with Conekta's own record (GET /events): each run, and what it backfilled.

-- One row per reconcile: its window of Conekta's created_at, and per event type what Conekta
-- listed and what became of it (archived already, backfilled now, in flight, never stored).
CREATE TABLE reconcile_runs (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    dry_run      boolean NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    livemode     boolean,                          -- of the events listed (the key's mode)
    counts       jsonb NOT NULL DEFAULT '{}',      -- {type: {seen, archived, backfilled, ...}}
    error        text
);
CREATE INDEX reconcile_runs_ok_idx ON reconcile_runs (until) WHERE status = 'ok' AND NOT dry_run;

-- Events Conekta had and the archive did not, published by a reconcile: never published twice
-- (a purged dead letter stays purged), and `stats` can name what is still on its way.
CREATE TABLE reconcile_backfills (
    event_id      text PRIMARY KEY,
    type          text NOT NULL,
    livemode      boolean NOT NULL,
    created_at    timestamptz NOT NULL,            -- Conekta's created_at
    run_id        bigint NOT NULL REFERENCES reconcile_runs (id),
    published_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconcile_backfills_created_at_idx ON reconcile_backfills (created_at);
