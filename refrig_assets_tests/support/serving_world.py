"""A small fleet run through the real batch path once per test process, for the serving tests.

40 simulated devices × 3 hours land as files, go through the Dagster assets (readings →
quality → features), both hourly detectors are trained on the first two hours (their first
versions become production) and the third hour is scored by the score assets. A second
isolation_forest version is registered (retrained on the same hours) for rollout and reload
tests. :func:`use_serving_world` copies it into a test's own folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import dagster as dg
import pandas as pd

from refrig_assets.core.config import CONFIG_DIR
from refrig_assets.core.settings import MODELS_DIR
from refrig_assets.simulator import SimulationConfig, simulate_fleet

HOURS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
MODELS = ["isolation_forest", "statistical_baseline"]
START = datetime(2026, 1, 1, tzinfo=UTC)
ENV = (
    "REFRIG_HOME",
    "DAGSTER_HOME",
    "REFRIG_LANDING_DIR",
    "REFRIG_DATA_DIR",
    "REFRIG_DEVICE_REGISTRY",
    "REFRIG_LABELS",
    "REFRIG_ALERTS_DB_URL",
    "REFRIG_LIFECYCLE_DB_URL",
    "MLFLOW_TRACKING_URI",
    "REFRIG_CADENCE_SECONDS",
    "REFRIG_MODELS_DIR",
    "REFRIG_CONFIG_DIR",
)


def _run(defs, instance, job, assets, partition=None, run_config=None):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[dg.AssetKey(a) for a in assets],
        run_config=run_config,
    )
    assert result.success
    return result


@cache
def serving_world() -> Path:
    """Build the world once (removed at exit); returns its REFRIG_HOME."""
    root = Path(tempfile.mkdtemp(prefix="refrig-serving-"))
    atexit.register(shutil.rmtree, root, True)
    home = root / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").touch()
    saved = {k: os.environ.get(k) for k in ENV}
    try:
        for k in ENV:
            os.environ.pop(k, None)
        os.environ["REFRIG_HOME"] = str(home)
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        from refrig_assets.core.settings import get_settings
        from refrig_assets.definitions import defs
        from refrig_assets.defs.ingestion.assets import device_registry

        s = get_settings()
        config = SimulationConfig(devices=40, hours=3, start=START, seed=7, fault_fraction=0.2)
        simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
        instance = dg.DagsterInstance.ephemeral()
        dg.materialize([device_registry], instance=instance, resources=defs.resources)
        for hour in HOURS:
            _run(defs, instance, "hourly_pipeline", PREP, hour)
        window = {"start_partition": HOURS[0], "end_partition": HOURS[1]}
        models = [f"{m}_model" for m in MODELS]
        train = {"ops": {m: {"config": window} for m in models}}
        _run(defs, instance, "train_detectors", models, run_config=train)
        _run(defs, instance, "hourly_pipeline", [f"{m}_scores" for m in MODELS], HOURS[2])
        _register_second_version(s)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return home


def _register_second_version(settings) -> None:
    """isolation_forest v2: the same detector refitted on the first hour only (a candidate)."""
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.scoring.score import with_cohort
    from refrig_assets.training.fit import train_detector
    from refrig_assets.training.registry import ModelRegistry

    store = ParquetStore(settings.data_dir)
    features = with_cohort(store.read("device_features", HOURS[0]), store.read("device_registry"))
    detector, lineage, metrics = train_detector(
        load_model_config("isolation_forest"), features, HOURS[0], "v2"
    )
    ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir).register(
        detector, lineage, metrics
    )


def use_serving_world(tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the world as REFRIG_HOME, with its own models/ and config/ folders
    (artifacts stay in the shared world: they are only read). Returns the home."""
    source = serving_world()
    home = tmp_path / "home"
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("artifacts"))
    (home / "mlflow" / "artifacts").symlink_to(source / "mlflow" / "artifacts")
    shutil.copytree(MODELS_DIR, tmp_path / "models")
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REFRIG_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("REFRIG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("REFRIG_ACTOR", "tester")
    return home


def landed_readings(home: Path, hours: list[str] = HOURS) -> pd.DataFrame:
    """The readings the batch path kept for ``hours`` (the typed sensor_readings partitions,
    rows without a read error), in the sensor_readings contract's columns."""
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.storage import ParquetStore

    store = ParquetStore(home / "data")
    columns = load_contract("sensor_readings").column_names
    frames = []
    for hour in hours:
        typed = store.read("sensor_readings", hour)
        kept = typed[(typed["source_row"] >= 0) & typed["read_error"].isna()]
        frames.append(kept[columns])
    return pd.concat(frames, ignore_index=True)


def as_json(readings: pd.DataFrame) -> dict:
    """Readings as a gateway sends them: ISO timestamps, plain JSON values."""
    out = readings.assign(ts=readings["ts"].map(lambda t: t.isoformat()))
    out["door_open"] = out["door_open"].astype(object)
    return {"readings": out.astype(object).where(out.notna(), None).to_dict("records")}
