"""Every detector on fleets too small or too short for it: it trains, or it refuses with a
:class:`NotTrainable` whose reason names the models/ setting it fell short of — never another
error, never a model that pretends."""

import pandas as pd
import pytest

from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.detectors.base import NotTrainable, build_detector
from tools.benchmarks.scoring import START, synthetic_features

MODELS = all_model_ids()


def first_hours(frame: pd.DataFrame, hours: float) -> pd.DataFrame:
    return frame[frame["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=hours)]


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize(("devices", "hours"), [(1, 3), (1, 2), (2, 2), (2, 0.5), (8, 3)])
def test_a_detector_trains_or_says_which_setting_the_fleet_falls_short_of(model_id, devices, hours):
    frame = first_hours(synthetic_features(devices=devices, hours=3, seed=3), hours)
    detector = build_detector(load_model_config(model_id))
    try:
        detector.fit(frame)
    except NotTrainable as refused:
        assert refused.setting in str(refused)
        assert detector.config.setting(refused.setting) is not None
        return
    scores = detector.score(frame)
    assert len(scores) > 0
    assert scores["anomaly_score"].between(0, 1).all()


def test_dbscan_refuses_a_fleet_no_larger_than_min_samples_and_names_it():
    config = load_model_config("dbscan_cohort")
    min_samples = int(config.hyperparameter("min_samples"))
    frame = synthetic_features(devices=min_samples - 2, hours=3, seed=3)
    with pytest.raises(NotTrainable) as refused:
        build_detector(config).fit(frame)
    assert refused.value.setting == "hyperparameters.min_samples"
    assert f"{min_samples - 2} devices" in str(refused.value)
    assert "fleet too small" in str(refused.value)


def test_dbscan_trains_once_the_fleet_has_more_devices_than_min_samples():
    config = load_model_config("dbscan_cohort")
    min_samples = int(config.hyperparameter("min_samples"))
    frame = synthetic_features(devices=min_samples + 3, hours=3, seed=3)
    detector = build_detector(config).fit(frame)
    assert detector.training_rows > 0


def test_dbscan_on_a_fleet_missing_a_sensor_names_the_feature_not_the_fleet_size(refrig_home):
    """A large enough fleet whose files lack a sensor (REFRIG_SENSORS unset) has no complete
    device profile: the reason names the feature no device has, not "fleet too small"."""
    config = load_model_config("dbscan_cohort")
    min_samples = int(config.hyperparameter("min_samples"))
    frame = synthetic_features(devices=min_samples + 3, hours=3, seed=3)
    detector = build_detector(config)
    absent = detector.feature_columns[0]
    frame[absent] = float("nan")
    with pytest.raises(NotTrainable) as refused:
        detector.fit(frame)
    assert refused.value.setting == "REFRIG_SENSORS"
    assert absent in str(refused.value)
    assert "fleet too small" not in str(refused.value)


def test_too_few_scorable_windows_names_the_training_min_rows_setting():
    config = load_model_config("statistical_baseline")
    frame = first_hours(synthetic_features(devices=1, hours=1, seed=3), 1)
    frame = frame.head(int(config.setting("training.min_rows")) - 1)
    with pytest.raises(NotTrainable) as refused:
        build_detector(config).fit(frame)
    assert refused.value.setting == "training.min_rows"


def test_a_sensor_the_data_reports_but_quality_flagged_throughout_names_its_range(refrig_home):
    """A fleet whose files do report the sensor, every reading of it flagged (a pressure in kPa
    imported as psi is out of the contract's range): the reason says the data reports it and
    points at its range, not at REFRIG_SENSORS."""
    from refrig_assets.core.reported_measurements import record_reported
    from refrig_assets.core.settings import get_settings

    config = load_model_config("dbscan_cohort")
    min_samples = int(config.hyperparameter("min_samples"))
    frame = synthetic_features(devices=min_samples + 3, hours=3, seed=3)
    detector = build_detector(config)
    absent = next(c for c in detector.feature_columns if c.startswith("pressure_high_side"))
    frame[absent] = float("nan")
    record_reported(get_settings().data_dir, ["pressure_high_side"], "2026-01-01-00:00")
    with pytest.raises(NotTrainable) as refused:
        detector.fit(frame)
    assert refused.value.setting == "pressure_high_side.range"
    assert "reports pressure_high_side" in str(refused.value)
    assert "REFRIG_SENSORS" not in str(refused.value)
