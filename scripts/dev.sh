#!/usr/bin/env bash
# The Dagster UI (dagster dev) on 127.0.0.1:${DAGSTER_PORT:-3000} until Ctrl-C or SIGTERM.
#
# dagster dev started from a non-interactive shell (make in a script, CI, `make dev &`) ignores
# SIGINT and SIGTERM. Here it runs in a process group of its own (job control) and this script
# forwards INT/TERM to that group, then waits for the webserver, daemon and code server to exit.
set -euo pipefail
set -m
VENV=${VENV:-.venv}
"$VENV/bin/dagster" dev -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}" -m refrig_assets.definitions &
dev=$!
stop() {
  trap - INT TERM
  kill -TERM -- "-$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  exit 0
}
trap stop INT TERM
wait "$dev"
