"""Prometheus metrics of the worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "conekta_worker_events_total",
    "Consumed messages by outcome (applied, duplicate, stale, redelivered, other_mode; ignored:"
    " no handler; invalid: signed but not a usable event, archived with the reason; dead_letter:"
    " stored in the dead-letter table).",
    ["outcome"],
)
BATCH_SIZE = Histogram(
    "conekta_worker_batch_size",
    "Events per applied batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
APPLY_LATENCY = Histogram(
    "conekta_worker_apply_latency_seconds",
    "From Conekta's created_at (whole seconds) to the ledger commit.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
COMMIT_SECONDS = Histogram(
    "conekta_worker_batch_commit_seconds",
    "Time to apply and commit one batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RETRIES = Counter(
    "conekta_worker_retries_total", "Messages sent to a retry queue, by error kind.", ["kind"]
)
DEAD_LETTERS = Counter(
    "conekta_worker_dead_letters_total",
    "Messages dead-lettered by the worker, by error kind.",
    ["kind"],
)
DEAD_LETTERS_STORED = Counter(
    "conekta_worker_dead_letters_stored_total",
    "Dead letters moved from conekta.dead-letters into the dead_letters table.",
)
DEAD_LETTERS_OPEN = Gauge(
    "conekta_worker_dead_letters_open",
    "Dead letters in the dead_letters table not yet replayed or purged.",
)
DATABASE_DOWN = Gauge("conekta_worker_database_unavailable", "1 while the database is unreachable.")
OUTBOX_BACKLOG = Gauge("conekta_worker_outbox_backlog", "Fulfillment messages not yet published.")
OUTBOX_PUBLISHED = Counter(
    "conekta_worker_outbox_published_total", "Fulfillment messages published."
)
QUEUE_DEPTH = Gauge(
    "conekta_worker_queue_messages",
    "Messages ready in a queue (work queue: consumer lag).",
    ["queue"],
)
QUEUE_CONSUMERS = Gauge("conekta_worker_queue_consumers", "Consumers on a queue.", ["queue"])
RECONCILE_ENABLED = Gauge(
    "conekta_reconcile_enabled", "1 when this worker reconciles with Conekta's API on a schedule."
)
RECONCILE_LAST_SUCCESS = Gauge(
    "conekta_reconcile_last_success_timestamp_seconds",
    "When the last successful reconcile (by any worker) finished, unix seconds.",
)
RECONCILE_RUNS = Counter(
    "conekta_reconcile_runs_total",
    "Scheduled reconcile runs by result (ok, failed; skipped: another worker ran it).",
    ["result"],
)
RECONCILE_BACKFILLED = Counter(
    "conekta_reconcile_backfilled_total",
    "Events Conekta listed that the archive lacked, published by a reconcile (missed webhooks).",
)
RECONCILE_DIFFERENCE = Gauge(
    "conekta_reconcile_difference",
    "After the last reconcile: events Conekta lists that are still not archived although an "
    "earlier reconcile published them (queued, retrying, dead-lettered or purged).",
)
QUEUE_NONEMPTY_SECONDS = Gauge(
    "conekta_worker_queue_nonempty_seconds",
    "Seconds since a queue was last seen empty (for a queue nobody consumes: its oldest message's"
    " age, at most since this worker started).",
    ["queue"],
)
CONTRADICTIONS = Counter(
    "conekta_worker_contradictions_total",
    "Events where an unpaid order's ending (expired, canceled, voided) met a payment: for"
    " reconciliation with Conekta.",
)
OVERPAID_ORDERS = Counter(
    "conekta_worker_overpaid_orders_total",
    "Events whose paid charges add up to more than their order's amount (applied; ledger verify"
    " warns).",
)
RECONCILE_FLAGS = Counter(
    "conekta_worker_reconcile_flags_total",
    "Orders flagged for reconcile: an event's charges or refunds list said has_more.",
)
SUBSCRIBER_QUEUE_EXISTS = Gauge(
    "conekta_fulfillment_subscriber_queue_exists",
    "1 when the queue conekta.fulfillment.<subscriber> of a configured subscriber exists.",
    ["subscriber"],
)
SUBSCRIBER_MESSAGES = Gauge(
    "conekta_fulfillment_subscriber_messages",
    "Messages ready in a configured subscriber's queue (its lag).",
    ["subscriber"],
)
SUBSCRIBER_CONSUMERS = Gauge(
    "conekta_fulfillment_subscriber_consumers",
    "Consumers on a configured subscriber's queue.",
    ["subscriber"],
)
SUBSCRIBER_DEAD_LETTERS = Gauge(
    "conekta_fulfillment_subscriber_dead_letters",
    "Messages in a configured subscriber's own dead-letter queue.",
    ["subscriber"],
)
SETTLE_ENABLED = Gauge(
    "conekta_settle_enabled", "1 when the worker pulls Conekta's settlement records (API key set)."
)
SETTLE_RUNS = Counter(
    "conekta_settle_runs_total",
    "Scheduled `settle pull` runs by result (ok, failed, skipped: another worker pulled).",
    ["result"],
)
SETTLE_RECORDS = Counter(
    "conekta_settle_records_total",
    "Conekta records `settle pull` stored for the first time, by kind (transactions, transfers).",
    ["kind"],
)
SETTLE_LAST_SUCCESS = Gauge(
    "conekta_settle_last_success_timestamp_seconds",
    "Unix time of the last successful settle pull (0: none yet).",
)
SETTLE_IN_TRANSIT = Gauge(
    "conekta_settle_in_transit_cents",
    "conekta:in_transit per currency and mode after the last pull: payouts sent that no bank"
    " line shows yet.",
    ["currency", "livemode"],
)
SETTLE_BROKEN = Gauge(
    "conekta_settle_broken_invariants",
    "What `settle verify` finds broken after the last pull, per invariant (1 balance, 2"
    " unexplained records, 3 money stuck in transit, 4 transfers and bank lines not one to one).",
    ["invariant"],
)
