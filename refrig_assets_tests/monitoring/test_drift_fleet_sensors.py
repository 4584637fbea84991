"""Feature drift follows the fleet's sensors: a temperature-and-door fleet's drift is measured on
the inputs its detectors were trained on (the plain evaporator mean), not on the model config's
running statistics of six sensors the fleet never had."""

from dataclasses import replace

import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.monitoring.drift import feature_drift_table
from refrig_assets.monitoring.reference import model_inputs
from refrig_assets.monitoring.settings import load_monitoring_settings
from refrig_assets.training.fit import train_detector
from refrig_assets.training.registry import ModelRegistry
from tools.benchmarks.scoring import START, synthetic_features

MODEL = "statistical_baseline"


@pytest.fixture
def registry(refrig_home) -> ModelRegistry:
    from refrig_assets.core.settings import get_settings

    s = get_settings()
    return ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)


def _registered(registry: ModelRegistry, features: pd.DataFrame) -> str:
    detector, lineage, metrics = train_detector(load_model_config(MODEL), features, "h0..h1", "r")
    return registry.register(detector, lineage, metrics)


def test_drift_of_a_temperature_and_door_fleet_is_measured_on_the_models_inputs(
    registry, monkeypatch
):
    monkeypatch.setenv("REFRIG_SENSORS", "temperature_evaporator,door_open")
    features = synthetic_features(devices=20, hours=3, seed=2)
    training = features[features["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=2)]
    version = _registered(registry, training)

    configured = list(load_model_config(MODEL).feature_columns)
    inputs = model_inputs(registry, MODEL, version)
    # The config lists pressure, current and vibration statistics; the fleet has none of them.
    assert "pressure_low_side_running_mean" in configured
    assert inputs == ["temperature_evaporator_mean"]

    settings = replace(load_monitoring_settings(MODEL).drift, min_windows=10)
    later = features[features["window_start"] >= pd.Timestamp(START) + pd.Timedelta(hours=2)]
    current = later.assign(temperature_evaporator_mean=later["temperature_evaporator_mean"] + 5)
    table = feature_drift_table(training, current, inputs, settings)
    assert set(table["feature"]) == {"temperature_evaporator_mean"}
    assert (table["band"] == "significant").all()


def test_a_fleet_with_every_sensor_keeps_the_configured_inputs(registry, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    features = synthetic_features(devices=20, hours=2, seed=2)
    version = _registered(registry, features)
    assert model_inputs(registry, MODEL, version) == list(load_model_config(MODEL).feature_columns)
