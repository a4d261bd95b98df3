#!/bin/sh
# Runs once, on the first start (empty data directory), as the container's superuser `postgres`,
# which nothing else uses. Creates the roles the services use (README "Roles and permissions"),
# with the passwords the compose `secrets` service drew (init/secrets.py, /run/conekta):
#   conekta_owner        owns the database and its tables: `migrate`, `archive prune/restore/sign`
#                        and `console add-user/disable-user/remove-user` connect as it
#   conekta_worker_app   the worker daemon, a member of conekta_worker
#   conekta_console_app  the ops console, a member of conekta_console
#   conekta_oncall_app   the on-call CLI (`docker compose run --rm oncall ...`), in conekta_oncall
# `migrate` grants each NOLOGIN role only what it uses (store/migrations/grants.sql).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$(cat /run/conekta/owner)" \
    -v worker_password="$(cat /run/conekta/worker)" \
    -v console_password="$(cat /run/conekta/console)" \
    -v oncall_password="$(cat /run/conekta/oncall)" <<'SQL'
CREATE ROLE conekta_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE conekta_worker NOLOGIN;
CREATE ROLE conekta_console NOLOGIN;
CREATE ROLE conekta_oncall NOLOGIN;
CREATE ROLE conekta_worker_app LOGIN PASSWORD :'worker_password' IN ROLE conekta_worker;
CREATE ROLE conekta_console_app LOGIN PASSWORD :'console_password' IN ROLE conekta_console;
CREATE ROLE conekta_oncall_app LOGIN PASSWORD :'oncall_password' IN ROLE conekta_oncall;
CREATE DATABASE conekta_ingest OWNER conekta_owner;
REVOKE ALL ON DATABASE conekta_ingest FROM PUBLIC;
SQL
