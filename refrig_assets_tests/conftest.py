"""Shared fixtures: an isolated REFRIG_HOME per test, and a small simulated fleet."""

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

START = datetime(2026, 1, 1, tzinfo=UTC)


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
    from refrig_assets.settings import get_settings
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    config = SimulationConfig(devices=40, hours=3, start=START, seed=7, fault_fraction=0.2)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    return s
