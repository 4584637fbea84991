"""A fleet whose compressors never pass the contract's running threshold, through the training
job ``refrig pipeline run`` runs: no detector registers a version that scores every window the
same; each is recorded as not trained, and the run's summary lines say why, naming the
threshold to change, and name the detectors that scored nothing."""

import numpy as np

from refrig_assets.cli.evaluation_runner import held_assets
from refrig_assets.cli.pipeline import not_trained_line
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle import audit as ev
from refrig_assets.simulator import SimulationConfig
from refrig_assets_tests.training.test_small_fleet import (
    HOURS,
    START,
    audit_events,
    home,  # noqa: F401  (fixture)
    metadata,
    registry,
    train,
)
from tools.demos.lifecycle_demo import simulated_features

MODELS = ["statistical_baseline", "isolation_forest"]


def write_never_running_fleet(devices: int) -> None:
    """Feature windows as a fleet read below the running threshold has them: duty cycle 0,
    every running-state feature missing."""
    store = ParquetStore(get_settings().data_dir)
    config = SimulationConfig(devices=devices, hours=len(HOURS), start=START, seed=11)
    by_hour, fleet_registry, _ = simulated_features(config)
    store.write("device_registry", None, fleet_registry)
    for key, frame in by_hour.items():
        frame = frame.copy()
        frame["duty_cycle"] = 0.0
        frame[[c for c in frame.columns if "_running_" in c]] = np.nan
        store.write("device_features", key, frame)


def test_a_fleet_that_never_runs_is_not_trained_and_the_run_says_why(home):  # noqa: F811
    write_never_running_fleet(8)
    trained = train(home, MODELS)
    assert trained.success
    (sensor,) = [
        c
        for c in load_contract("sensor_readings").columns_with_role("sensor")
        if "running_above" in c.extra
    ]
    threshold = f"{sensor.name} above {sensor.extra['running_above']} {sensor.unit}"
    summary = held_assets(trained)
    for model_id in MODELS:
        meta = metadata(trained, f"{model_id}_model")
        assert meta["trained"] is False
        assert threshold in meta["not_trained"]
        assert "current_compressor_running_mean" in meta["not_trained"]
        assert meta["short_of_setting"] == f"{sensor.name}.running_above"
        assert registry().latest_version(model_id) is None
        (refusal,) = audit_events(model_id)
        assert refusal.event == ev.NOT_TRAINED and refusal.reason == meta["not_trained"]
        # what `refrig pipeline run` prints under its training line
        assert summary[f"{model_id}_model"] == f"not trained: {meta['not_trained']}"
    # and the run's summary, after "batch alerts: none", names them
    line = not_trained_line([f"{m}_model" for m in MODELS])
    assert line.startswith(f"detectors not trained ({len(MODELS)}): statistical_baseline_model, ")
