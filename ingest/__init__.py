"""The receiver: `POST /webhooks/conekta` verified, then published durably, then answered 200.

Imports `core` (settings, broker, topology, health) and `schemas`; never the worker, the domain or
the database. `send` is the matching client that signs files as Conekta does.
"""
