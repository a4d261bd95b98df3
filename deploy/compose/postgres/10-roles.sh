#!/bin/sh
# Runs once, on the first start (empty data directory), as the container's superuser `postgres`,
# which nothing else uses. Creates the two roles the services use (README "Roles and permissions"),
# with the passwords the compose `secrets` service drew (init/secrets.py, /run/conekta):
#   conekta_owner    owns the database and its tables; `migrate` and `archive prune` connect as it
#   conekta_app      logs in as a member of conekta_runtime, which `migrate` grants only what
#                    receiver-side services use (store/migrations/grants.sql)
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$(cat /run/conekta/owner)" -v app_password="$(cat /run/conekta/app)" <<'SQL'
CREATE ROLE conekta_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE conekta_runtime NOLOGIN;
CREATE ROLE conekta_app LOGIN PASSWORD :'app_password' IN ROLE conekta_runtime;
CREATE DATABASE conekta_ingest OWNER conekta_owner;
REVOKE ALL ON DATABASE conekta_ingest FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE conekta_ingest TO conekta_runtime;
SQL
