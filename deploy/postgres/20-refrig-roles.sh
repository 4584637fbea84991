#!/usr/bin/env bash
# Roles of the operational database, created once on an empty server after init.sql: by the
# postgres image's entrypoint in docker-compose.yml (it runs this file with the container's
# environment), and by scripts/postgres_start.sh without Docker.
#
# - the owner: POSTGRES_USER, who created the databases. `refrig db migrate` runs as the owner
#   and creates the tables and append-only triggers of refrig_alerts;
# - the application role refrig_app (password REFRIG_APP_DB_PASSWORD): may connect to
#   refrig_alerts only and owns nothing, so it cannot create, drop, truncate or alter a table
#   nor disable a trigger; `refrig db migrate --app-role refrig_app` grants it its row privileges.
# Needs POSTGRES_USER and REFRIG_APP_DB_PASSWORD; psql reaches the server through the libpq
# environment (PGHOST, PGPORT) or the default socket.
set -eo pipefail
: "${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${REFRIG_APP_DB_PASSWORD:?set REFRIG_APP_DB_PASSWORD for the application role}"

psql -v ON_ERROR_STOP=1 --no-password --quiet --username "$POSTGRES_USER" --dbname postgres \
  -v app_password="$REFRIG_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE refrig_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'app_password';
-- Only the owner reaches the Dagster and MLflow databases; refrig_app reaches refrig_alerts.
REVOKE ALL ON DATABASE dagster, mlflow, refrig_alerts FROM PUBLIC;
GRANT CONNECT ON DATABASE refrig_alerts TO refrig_app;
SQL

psql -v ON_ERROR_STOP=1 --no-password --quiet --username "$POSTGRES_USER" --dbname refrig_alerts <<'SQL'
-- Nobody but the owner creates objects in the schema (PostgreSQL 15's default, made explicit).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO refrig_app;
SQL
