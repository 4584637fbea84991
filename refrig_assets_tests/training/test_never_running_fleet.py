"""A fleet whose compressors never pass the contract's running threshold, through the training
job ``refrig pipeline run`` runs: each detector trains on the plain statistics instead of the
running-conditioned ones (every one of those is missing), registers a version that scores its
windows apart, and the asset metadata, the run's summary lines and the version page say so,
naming the threshold."""

import numpy as np

from refrig_assets.cli.evaluation_runner import held_assets
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


def test_a_fleet_that_never_runs_trains_on_plain_statistics_and_the_run_says_so(home):  # noqa: F811
    write_never_running_fleet(8)
    trained = train(home, MODELS)
    assert trained.success
    (sensor,) = load_contract("sensor_readings").running_sensors()
    threshold = f"{sensor.name} never above running_above {sensor.extra['running_above']}"
    summary = held_assets(trained)
    for model_id in MODELS:
        meta = metadata(trained, f"{model_id}_model")
        assert meta.get("trained", True) is not False and meta["model_version"]
        notes = meta["training_notes"]
        assert threshold in notes and "replaced by plain statistics" in notes
        assert "current_compressor_running_mean -> current_compressor_mean" in notes
        # what `refrig pipeline run` prints under its training line
        assert summary[f"{model_id}_model"] == f"trained, note: {notes}"
        version = registry().latest_version(model_id)
        assert version is not None
        page = registry().client.get_model_version(model_id, version).description
        assert notes in page
        assert not any(e.event == ev.NOT_TRAINED for e in audit_events(model_id))
