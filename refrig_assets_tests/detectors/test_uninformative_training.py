"""A detector whose training rows carry no information is not trained: a fleet whose motors
draw less than the contract's running threshold has no running window, so every running mean
is missing and the duty cycle is 0 everywhere. Such a fleet trains on the plain statistics
(test_running_state_fallback.py); where those are not in the data either, a model fitted on it
scores every window the same: it must refuse and say why. A constant or missing column among
varying ones trains."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.detectors.base import NotTrainable, build_detector
from refrig_assets.detectors.running_state import plain_statistics
from tools.benchmarks.scoring import synthetic_features

HOURLY = ["statistical_baseline", "isolation_forest", "pca_reconstruction"]


def fleet() -> pd.DataFrame:
    return synthetic_features(devices=8, hours=3, seed=3)


def running_features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if "_running_" in c]


def never_running(frame: pd.DataFrame) -> pd.DataFrame:
    """What the features of a fleet read below the running threshold look like."""
    frame = frame.copy()
    frame["duty_cycle"] = 0.0
    frame[running_features(frame)] = np.nan
    return frame


def without_plain_statistics(frame: pd.DataFrame, detector) -> pd.DataFrame:
    """``frame`` without the plain statistics a never-running fleet would fall back on."""
    plain = plain_statistics(detector.feature_columns, load_contract("device_features"))
    return frame.drop(columns=[c for c in plain if c in frame.columns])


def running_sensor():
    readings = load_contract("sensor_readings")
    (column,) = [c for c in readings.columns_with_role("sensor") if "running_above" in c.extra]
    return column


@pytest.mark.parametrize("model_id", all_model_ids())
def test_a_fleet_that_never_ran_is_not_trained_and_the_reason_names_columns_and_threshold(
    model_id,
):
    detector = build_detector(load_model_config(model_id))
    with pytest.raises(NotTrainable) as refused:
        detector.fit(without_plain_statistics(never_running(fleet()), detector))
    reason = refused.value.reason
    missing = [c for c in detector.feature_columns if feature_is_running(c)]
    assert missing
    for column in missing:
        assert column in reason
    sensor = running_sensor()
    assert f"{sensor.name} above {sensor.extra['running_above']} {sensor.unit}" in reason
    assert "running_above" in reason and "sensor_readings" in reason
    assert refused.value.setting == f"{sensor.name}.running_above"
    assert detector.training_rows == 0


def feature_is_running(column: str) -> bool:
    return load_contract("device_features").column(column).extra.get("condition") == "running"


def test_a_compressor_that_ran_too_briefly_names_the_running_share_setting():
    """Windows where the compressor ran, but never for running_share.min of the window: the
    running means are blanked, the duty cycle is the same small share everywhere."""
    config = load_model_config("statistical_baseline")
    share = float(config.setting("running_share.min"))
    frame = fleet()
    frame["duty_cycle"] = share / 2
    detector = build_detector(config)
    with pytest.raises(NotTrainable) as refused:
        detector.fit(without_plain_statistics(frame, detector))
    assert refused.value.setting == "running_share.min"
    assert f"running_share.min {share}" in refused.value.reason


def test_every_column_constant_is_not_trained():
    config = load_model_config("isolation_forest")
    detector = build_detector(config)
    frame = fleet()
    for column in detector.input_columns:
        frame[column] = frame[column].iloc[0]
    with pytest.raises(NotTrainable) as refused:
        detector.fit(frame)
    assert "every training window reads the same value" in refused.value.reason
    for column in detector.feature_columns:
        assert f"{column} is " in refused.value.reason
    assert refused.value.setting == "features.sensors"


@pytest.mark.parametrize("model_id", HOURLY)
def test_one_constant_column_among_varying_ones_still_trains(model_id):
    frame = fleet()
    frame["temperature_condenser_running_mean"] = 35.0
    detector = build_detector(load_model_config(model_id)).fit(frame)
    scores = detector.score(frame)["anomaly_score"]
    assert len(scores) == len(frame) and scores.notna().all()
    assert scores.nunique() > 1


@pytest.mark.parametrize("model_id", HOURLY)
def test_one_missing_column_among_varying_ones_trains_on_the_others(model_id):
    frame = fleet()
    frame["pressure_high_side_running_mean"] = np.nan
    detector = build_detector(load_model_config(model_id)).fit(frame)
    scores = detector.score(frame)
    assert len(scores) == len(frame) and scores["anomaly_score"].notna().all()
    assert scores["anomaly_score"].nunique() > 1
    # the missing column is never a contributor
    assert not scores["top_contributors"].str.contains("pressure_high_side").any()
