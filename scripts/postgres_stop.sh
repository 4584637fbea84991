#!/usr/bin/env bash
# Stop a server started by scripts/postgres_start.sh and delete its directory.
# Usage: scripts/postgres_stop.sh "$REFRIG_PG_DIR"
set -euo pipefail
dir=${1:?usage: postgres_stop.sh REFRIG_PG_DIR}
case "$(basename "$dir")" in
  refrig-pg.*) ;;
  *) echo "error: $dir is not a directory made by postgres_start.sh" >&2; exit 2 ;;
esac
bindir=$(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -1)
if [ -f "$dir/data/postmaster.pid" ]; then
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
  else
    "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
  fi
fi
rm -rf "$dir"
