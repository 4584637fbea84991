"""Shared fixtures: an isolated REFRIG_HOME per test, and a small simulated fleet."""

import os
import subprocess
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from refrig_assets.core.settings import get_settings

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Definitions load once per test process: their partitions must not depend on the range a
# `make run` recorded in the developer's own home (tests that need it unset this).
os.environ.setdefault("REFRIG_PARTITION_START", get_settings().partition_start)

START = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """The stores that run on SQLite or PostgreSQL (alerts, audit trail, rollouts) are tested on
    both: when PostgreSQL is installed (scripts/system_packages.sh) and no
    ``REFRIG_TEST_POSTGRES_URL`` names a server, a throwaway one runs for the session.
    ``REFRIG_TEST_POSTGRES=0`` keeps the tests on SQLite only."""
    if os.environ.get("REFRIG_TEST_POSTGRES_URL") or os.environ.get("REFRIG_TEST_POSTGRES") == "0":
        return
    if not any(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        return
    done = subprocess.run(
        [str(ROOT / "scripts" / "postgres_start.sh")], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        warnings.warn(
            f"PostgreSQL tests skipped: postgres_start.sh failed: {done.stderr[-500:]}",
            stacklevel=1,
        )
        return
    server = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    os.environ["REFRIG_TEST_POSTGRES_URL"] = server["REFRIG_ALERTS_DB_URL"]
    config.refrig_postgres_dir = server["REFRIG_PG_DIR"]


def pytest_unconfigure(config):
    directory = getattr(config, "refrig_postgres_dir", None)
    if directory:
        subprocess.run(
            [str(ROOT / "scripts" / "postgres_stop.sh"), directory], check=False, timeout=120
        )
        os.environ.pop("REFRIG_TEST_POSTGRES_URL", None)


@pytest.fixture
def refrig_home(tmp_path, monkeypatch) -> Path:
    """A fresh project home (data, landing, alert DB, MLflow, Dagster) for one test."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").touch()
    monkeypatch.setenv("REFRIG_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for var in (
        "REFRIG_LANDING_DIR",
        "REFRIG_DATA_DIR",
        "REFRIG_DEVICE_REGISTRY",
        "REFRIG_LABELS",
        "REFRIG_ALERTS_DB_URL",
        "MLFLOW_TRACKING_URI",
        "REFRIG_CADENCE_SECONDS",
        "REFRIG_OPERATIONS_FILE",
        "REFRIG_WORKORDER_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def small_fleet(refrig_home):
    """40 devices × 3 hours with faults, written to the landing zone of ``refrig_home``."""
    from refrig_assets.core.settings import get_settings
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    config = SimulationConfig(devices=40, hours=3, start=START, seed=7, fault_fraction=0.2)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    return s
