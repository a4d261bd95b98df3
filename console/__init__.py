"""The ops console: server-rendered pages and the admin JSON API (/api/v1) for the people on
call, on top of the on-call operations (ops/): the CLI and the API call the same functions; its
users and sessions live here (console/users.py). Never on the webhook listener; login required."""
