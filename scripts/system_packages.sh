#!/usr/bin/env bash
# Install the Debian packages that the deployment tests use, when they are missing:
#   postgresql      the Postgres-backed configuration run without Docker (scripts/postgres_start.sh)
#   chromium        the browser test of the Dagster UI (Playwright drives it; no browser download)
#   docker-compose  `docker-compose config` validates docker-compose.yml without a Docker engine
#   docker.io       the Docker engine (dockerd) that deploy/compose-test.sh starts
#   debootstrap     the Debian base image of deploy/compose-test.sh (no image registry)
# Usage: scripts/system_packages.sh [postgresql] [chromium] [docker-compose] [docker.io] [debootstrap]
#        (default: postgresql chromium docker-compose)
# Safe to re-run; does nothing when everything is there. Exits 0 with a warning when apt-get is
# unavailable, so callers can decide to skip (the tests say why).
set -euo pipefail

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(postgresql chromium docker-compose)

present() {
  case "$1" in
    postgresql) compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null ;;
    chromium) [ -x /usr/bin/chromium ] ;;
    docker-compose) command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ;;
    docker.io) command -v dockerd >/dev/null 2>&1 ;;
    debootstrap) command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] ;;
    *) echo "unknown package group: $1" >&2; exit 2 ;;
  esac
}

missing=()
for name in "${wanted[@]}"; do
  present "$name" || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: apt-get not available; cannot install: ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi

echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Serialise with other apt users (parallel test sessions); apt's own lock gives up immediately.
$SUDO flock /tmp/refrig-apt.lock bash -c "
  apt-get update -qq &&
  apt-get install -y -qq --no-install-recommends ${missing[*]}
" >&2 || echo "warning: could not install ${missing[*]}" >&2
