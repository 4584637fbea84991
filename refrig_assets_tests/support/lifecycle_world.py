"""A small registered world for lifecycle tests, built once per test process.

30 simulated devices × 8 hours of feature windows on disk, their registry and labels, and three
isolation_forest versions in a real MLflow registry (no alias, no audit yet):

* v1 — trained on the first two hours;
* v2 — deliberately worse: absurd hyperparameters and a few devices of one hour;
* v3 — v1 retrained on the same data (identical scores: it passes every gate).

:func:`use_world` copies it into a test's own folder and points the settings there, so each
test starts from the same state and may promote, pin and audit freely.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pandas as pd

from refrig_assets.core.config import CONFIG_DIR
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import MODELS_DIR
from refrig_assets.core.storage import ParquetStore
from refrig_assets.scoring.score import with_cohort
from refrig_assets.simulator import SimulationConfig
from refrig_assets.training.fit import train_detector
from refrig_assets.training.registry import ModelRegistry
from tools.demos.lifecycle_demo import simulated_features, worse_config

MODEL = "isolation_forest"
START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = [f"2026-01-01-{h:02d}:00" for h in range(8)]


@cache
def world() -> Path:
    """Build the world once (a temporary folder removed at exit); returns its REFRIG_HOME."""
    root = Path(tempfile.mkdtemp(prefix="refrig-lifecycle-"))
    atexit.register(shutil.rmtree, root, True)
    home = root / "home"
    store = ParquetStore(home / "data")
    config = SimulationConfig(devices=30, hours=8, start=START, seed=11, fault_fraction=0.2)
    by_hour, registry_frame, labels = simulated_features(config)
    store.write("device_registry", None, registry_frame)
    for key, frame in by_hour.items():
        store.write("device_features", key, frame)
    (home / "reference").mkdir(parents=True)
    labels.to_parquet(home / "reference" / "labels.parquet", index=False)

    registry = ModelRegistry(
        f"sqlite:///{home / 'mlflow' / 'mlflow.db'}", home / "mlflow" / "artifacts"
    )
    cfg = load_model_config(MODEL)
    keys = list(by_hour)
    train = with_cohort(
        pd.concat([by_hour[k] for k in keys[:2]], ignore_index=True), registry_frame
    )
    tiny = train[train["device_id"].isin(sorted(train["device_id"].unique())[:3])]
    tiny = tiny[tiny["window_start"] < tiny["window_start"].min() + pd.Timedelta(hours=1)]
    for data, model_config, run in (
        (train, cfg, "v1"),
        (tiny, worse_config(cfg), "v2"),
        (train, cfg, "v3"),
    ):
        detector, lineage, metrics = train_detector(model_config, data, "h0..h1", run)
        registry.register(detector, lineage, metrics)
    return home


def use_world(tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the world as REFRIG_HOME (with its own copies of models/ and config/);
    returns it.

    The MLflow database is copied; artifacts stay in the shared world (they are only read)."""
    source = world()
    home = tmp_path / "home"
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("artifacts"))
    shutil.copytree(MODELS_DIR, tmp_path / "models")
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    (home / "dagster").mkdir(exist_ok=True)
    (home / "dagster" / "dagster.yaml").touch()
    monkeypatch.setenv("REFRIG_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("REFRIG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("REFRIG_ACTOR", "tester")
    for var in (
        "REFRIG_LANDING_DIR",
        "REFRIG_DATA_DIR",
        "REFRIG_DEVICE_REGISTRY",
        "REFRIG_LABELS",
        "REFRIG_ALERTS_DB_URL",
        "REFRIG_LIFECYCLE_DB_URL",
        "MLFLOW_TRACKING_URI",
        "REFRIG_CADENCE_SECONDS",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


def evaluate(lc, candidate: str):
    """The gate report of ``candidate`` against the current champion on the world's newest
    feature hours (what the ``<model>_canary`` asset computes)."""
    from refrig_assets.core.settings import get_settings
    from refrig_assets.lifecycle.policy import load_policy
    from refrig_assets.lifecycle.promotion import evaluate_candidate, read_labels, recent_features

    s = get_settings()
    store = ParquetStore(s.data_dir)
    policy = load_policy(s.models_dir, MODEL)
    features, _ = recent_features(store, policy["canary"]["recent_hours"])
    return evaluate_candidate(
        lc.registry,
        MODEL,
        candidate,
        lc.registry.production_version(MODEL),
        features,
        store.read("device_registry"),
        read_labels(s.labels_path),
        policy,
    )
