"""The on-call operations, the one backend of cli/ and console/: dead letters, invalid events,
event search/show/replay, ledger reads and verify, stats, the audit trail and retention.

Above worker/ (a replay goes through the worker's own judging and reporting), below the two
front ends; every query through store/.
"""
