"""The worker: applies order events exactly once to the ledger and tells fulfillment."""
