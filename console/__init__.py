"""The ops console: server-rendered pages and the admin JSON API (/api/v1) for the people on
call, on top of the worker's actions (worker.explore, worker.dlq, worker.archive, worker.audit):
the CLI and the API call the same functions. Never on the webhook listener; login required."""
