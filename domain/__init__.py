"""The pure domain: what an event means and what it changes; no I/O.

Order events, order states, ledger postings, fulfillment messages, the archive record, outcomes,
and the plan of a batch. Imports only the standard library, orjson and `core.errors`; never a
driver, the broker or the network. The worker's store writes what a plan says.
"""
