"""What an ML engineer finds in the MLflow registry: each version carries metrics comparable
across versions, a signature, its training dataset and a description, in an experiment the UI
opens as classic ML; and a home moved to another path still loads its models."""

import shutil
from datetime import UTC, datetime

import mlflow
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import get_settings
from refrig_assets.scoring.score import with_cohort
from refrig_assets.simulator import SimulationConfig
from refrig_assets.training.fit import train_detector
from refrig_assets.training.registry import (
    CLASSIC_ML,
    EXPERIMENT,
    EXPERIMENT_KIND_TAG,
    ModelRegistry,
    logged_model_id,
)
from tools.demos.lifecycle_demo import simulated_features

MODEL = "isolation_forest"
SMALL_FLEET = SimulationConfig(
    devices=12,
    hours=2,
    start=datetime(2026, 1, 1, tzinfo=UTC),
    seed=5,
    fault_fraction=0.2,
)


def registry_here() -> ModelRegistry:
    s = get_settings()
    return ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)


@pytest.fixture
def two_versions(refrig_home):
    """Two versions of one detector trained on different hours of a small simulated fleet,
    the second evaluated by a canary (metrics logged as the canary asset does)."""
    by_hour, devices, _labels = simulated_features(SMALL_FLEET)
    registry = registry_here()
    for n, (key, frame) in enumerate(by_hour.items()):
        features = with_cohort(frame, devices)
        detector, lineage, metrics = train_detector(
            load_model_config(MODEL), features, key, f"r{n}"
        )
        registry.register(detector, lineage, metrics, training_features=features)
    registry.log_version_metrics(
        MODEL, "2", {"canary_mean_abs_score_diff": 0.03, "backtest_recall": 0.5}
    )
    return registry


def test_every_version_has_metrics_a_signature_a_dataset_and_a_description(
    two_versions,
):
    client = two_versions.client
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == CLASSIC_ML
    for found in client.search_model_versions(f"name='{MODEL}'"):
        version = client.get_model_version(MODEL, found.version)
        logged = client.get_logged_model(logged_model_id(version))
        metrics = {m.key for m in logged.metrics}
        assert {"training_rows", "training_flag_rate"} <= metrics, version.version
        folder = client.get_model_version_download_uri(MODEL, version.version)
        info = mlflow.models.Model.load(folder.removeprefix("file://"))
        inputs = info.signature.inputs.input_names()
        assert "device_id" in inputs and "temperature_evaporator_mean" in inputs
        assert "anomaly_score" in info.signature.outputs.input_names()
        datasets = client.get_run(version.run_id).inputs.dataset_inputs
        assert [d.dataset.name for d in datasets] == [
            f"device_features {version.tags['training_partitions']}"
        ]
        assert datasets[0].dataset.digest == version.tags["training_data_hash"]
        assert version.description.startswith(f"{MODEL} {version.tags['semver']}")
    second = client.get_logged_model(logged_model_id(client.get_model_version(MODEL, "2")))
    canary = {m.key for m in second.metrics}
    assert {"canary_mean_abs_score_diff", "backtest_recall"} <= canary


def test_a_moved_home_loads_its_models_and_registers_new_ones_under_itself(
    two_versions, refrig_home, tmp_path, monkeypatch
):
    moved = tmp_path / "elsewhere" / "home"
    shutil.move(refrig_home, moved)
    monkeypatch.setenv("REFRIG_HOME", str(moved))
    monkeypatch.setenv("DAGSTER_HOME", str(moved / "dagster"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # a new process: set by mlflow
    registry = registry_here()

    for version in ("1", "2"):
        detector = registry.load(MODEL, version)
        assert detector.config.model_id == MODEL
        assert str(moved) in registry.artifact_location(MODEL, version)

    by_hour, devices, _ = simulated_features(SMALL_FLEET)
    new = with_cohort(list(by_hour.values())[-1], devices)
    detector, lineage, metrics = train_detector(load_model_config(MODEL), new, "after-move", "r3")
    version = registry.register(detector, lineage, metrics, training_features=new)
    assert registry.artifact_location(MODEL, version).startswith(
        str(moved / "mlflow" / "artifacts")
    )
    assert not refrig_home.exists()
