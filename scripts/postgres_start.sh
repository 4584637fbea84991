#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the Postgres-backed configuration, without Docker:
# a fresh cluster in a temporary directory, listening on 127.0.0.1 only at a free port, with the
# deployment's databases (deploy/postgres/init.sql), a password-protected owner role and the
# application role refrig_app (deploy/postgres/20-refrig-roles.sh).
#
# Usage: set -a; eval "$(scripts/postgres_start.sh)"; set +a   ... scripts/postgres_stop.sh "$REFRIG_PG_DIR"
# Prints KEY=VALUE lines: the server (REFRIG_PG_DIR, PGHOST, PGPORT, PGUSER, PGPASSWORD) and the
# settings the deployment reads (DAGSTER_PG_*, REFRIG_ALERTS_DB_URL as the owner,
# MLFLOW_BACKEND_STORE_URI) and the application role's (REFRIG_APP_DB_USER,
# REFRIG_APP_DB_PASSWORD, REFRIG_APP_ALERTS_DB_URL).
# Installs Debian's postgresql when absent. PostgreSQL refuses to run as root, so under root
# the server runs as the `postgres` system user (created by the package).
# The cluster is for tests and trials: fsync is off, and it lives in /tmp.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

"$root/scripts/system_packages.sh" postgresql
bindir=$(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ]; then
  echo "error: PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin" >&2
  exit 1
fi

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/refrig-pg.XXXXXX")
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
user=refrig
password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
umask 077
printf '%s\n' "$password" >"$dir/pwfile"
[ "$(id -u)" = 0 ] && chown postgres: "$dir/pwfile"

as_server_user "$bindir/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/pwfile" \
  --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pwfile"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
for attempt in 1 2 3; do
  port=$(free_port)
  if as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c max_connections=100" \
    >/dev/null; then
    break
  fi
  [ "$attempt" = 3 ] && { tail -20 "$dir/postgres.log" >&2; exit 1; }
done

as_server_user "$bindir/psql" -q -h "$dir" -p "$port" -U "$user" -d postgres -v ON_ERROR_STOP=1 \
  -f - <"$root/deploy/postgres/init.sql" >/dev/null
app_password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
as_server_user env PATH="$bindir:$PATH" PGHOST="$dir" PGPORT="$port" POSTGRES_USER="$user" \
  REFRIG_APP_DB_PASSWORD="$app_password" "$root/deploy/postgres/20-refrig-roles.sh" >/dev/null

url="postgresql+psycopg2://$user:$password@127.0.0.1:$port"
cat <<VARS
REFRIG_PG_DIR=$dir
REFRIG_PG_BIN=$bindir
PGHOST=127.0.0.1
PGPORT=$port
PGUSER=$user
PGPASSWORD=$password
DAGSTER_PG_HOST=127.0.0.1
DAGSTER_PG_PORT=$port
DAGSTER_PG_USER=$user
DAGSTER_PG_PASSWORD=$password
DAGSTER_PG_DB=dagster
REFRIG_ALERTS_DB_URL=$url/refrig_alerts
REFRIG_APP_DB_USER=refrig_app
REFRIG_APP_DB_PASSWORD=$app_password
REFRIG_APP_ALERTS_DB_URL=postgresql+psycopg2://refrig_app:$app_password@127.0.0.1:$port/refrig_alerts
MLFLOW_BACKEND_STORE_URI=$url/mlflow
VARS
