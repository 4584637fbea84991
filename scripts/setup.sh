#!/usr/bin/env bash
# Create .venv with everything the project needs. Safe to re-run; does nothing when up to date.
# torch is installed first and pinned: any other spec would pull gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if ! command -v java >/dev/null 2>&1; then
  echo "Java not found: installing a headless JRE 17 for PySpark (Debian/Ubuntu)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless \
    || echo "warning: could not install Java; the Spark engine and its tests need it" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  "$VENV/bin/pip" install -q torch==2.13.0
fi
"$VENV/bin/pip" install -q uv
# Bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (common in containers and CI)
# every process would otherwise compile the packages' sources again (~6 s per interpreter).
"$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" -e '.[dev]'
# The project's own modules too (the editable install leaves them as sources): a Dagster run
# process imports ~170 of them before its first step (~0.23 CPU-s to compile each time).
# A module edited since is compiled in memory as before.
"$VENV/bin/python" -m compileall -q refrig_assets tools >/dev/null
echo "environment ready: $VENV"
