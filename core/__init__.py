"""The shared plumbing under the receiver and the worker.

Settings, errors, backoff, logging, process lifecycle, the broker (connections, the confirmed
publisher, the topology), the database connection (the one module that imports asyncpg) and the
health/metrics HTTP app. Imports nothing else of the project (only `schemas`).
"""
