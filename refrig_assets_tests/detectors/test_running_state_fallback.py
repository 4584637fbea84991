"""A fleet whose compressors never reach the contract's running threshold (a small motor drawing
less than running_above while it runs) has every running-conditioned feature missing: the
detectors train on the plain statistics instead, keep that choice in the model and say so. A
fleet that runs trains exactly as before; a refusal stays where even the plain statistics
carry no information."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import Detector, NotTrainable, build_detector
from refrig_assets.detectors.running_state import plain_statistics
from refrig_assets.training.fit import training_fingerprint
from tools.benchmarks.scoring import synthetic_features

HOURLY = ["statistical_baseline", "isolation_forest", "pca_reconstruction"]


def fleet(seed: int = 3) -> pd.DataFrame:
    return synthetic_features(devices=12, hours=4, seed=seed)


def running_columns(frame: pd.DataFrame) -> list[str]:
    features = load_contract("device_features")
    return [
        c
        for c in frame.columns
        if c in features.column_names and features.column(c).extra.get("condition") == "running"
    ]


def never_running(frame: pd.DataFrame, rows=slice(None)) -> pd.DataFrame:
    """The features of a fleet whose running-state sensor stays below its threshold."""
    frame = frame.copy()
    frame.loc[rows, "duty_cycle"] = 0.0
    frame.loc[rows, running_columns(frame)] = np.nan
    return frame


def running_sensor():
    (sensor,) = load_contract("sensor_readings").running_sensors()
    return sensor


@pytest.mark.parametrize("model_id", HOURLY)
def test_a_fleet_that_never_ran_trains_on_the_plain_statistics_and_says_so(model_id, tmp_path):
    config = load_model_config(model_id)
    frame = never_running(fleet())
    detector = build_detector(config).fit(frame)
    features = load_contract("device_features")
    configured = build_detector(config).feature_columns
    assert detector.feature_columns == plain_statistics(configured, features)
    assert not any(c in running_columns(frame) for c in detector.input_columns)
    assert "duty_cycle" not in detector.input_columns
    (note,) = detector.notes
    sensor = running_sensor()
    assert f"{sensor.name} never above running_above {sensor.extra['running_above']}" in note
    assert "running-conditioned features replaced by plain statistics" in note
    for cohort in frame["cohort"].unique():
        assert cohort in note
    assert "temperature_evaporator_running_mean -> temperature_evaporator_mean" in note
    # The choice travels with the model: a loaded version scores the same columns alike.
    detector.save(tmp_path)
    loaded = Detector.load(tmp_path)
    assert loaded.input_columns == detector.input_columns and loaded.notes == detector.notes
    scored = loaded.score(frame)
    pd.testing.assert_frame_equal(scored, detector.score(frame))
    assert len(scored) == len(frame) and scored["anomaly_score"].nunique() > 1


@pytest.mark.parametrize("model_id", HOURLY)
def test_a_lasting_fault_on_a_fleet_that_never_ran_is_flagged(model_id):
    config = load_model_config(model_id)
    train = never_running(fleet())
    detector = build_detector(config).fit(train)
    later = never_running(synthetic_features(devices=12, hours=4, seed=3, first_hour=4))
    device = later["device_id"].iloc[0]
    faulty = later["device_id"].eq(device) & (later["window_start"] >= later["window_start"].min())
    # Cooling lost: the evaporator warms far outside its own range for the whole span.
    spread = train["temperature_evaporator_mean"].std()
    later.loc[faulty, "temperature_evaporator_mean"] += 12 * spread
    scores = detector.score(later)
    flagged = scores[scores["anomaly_flag"]]
    assert device in set(flagged["device_id"])
    assert (flagged["device_id"] == device).mean() > 0.9
    assert "temperature_evaporator" in flagged.loc[
        flagged["device_id"] == device, "top_contributors"
    ].iloc[-1].split(",")


@pytest.mark.parametrize("model_id", HOURLY)
def test_a_fleet_that_runs_trains_and_scores_exactly_as_without_the_choice(model_id, monkeypatch):
    config = load_model_config(model_id)
    frame = fleet()
    chosen = build_detector(config).fit(frame)
    assert chosen.notes == ()
    assert chosen.input_columns == build_detector(config).input_columns
    monkeypatch.setattr(Detector, "choose_columns", lambda self, features: self)
    unchosen = build_detector(config).fit(frame)
    pd.testing.assert_frame_equal(chosen.score(frame), unchosen.score(frame))


def test_the_fingerprint_of_a_fleet_that_never_ran_covers_the_plain_statistics():
    """Two such fleets differ only in their plain statistics: they must not reuse each
    other's version."""
    config = load_model_config("statistical_baseline")
    frame = never_running(fleet())
    other = frame.copy()
    other["temperature_evaporator_mean"] += 1.0
    assert training_fingerprint(config, frame) != training_fingerprint(config, other)
    running = fleet()
    changed = running.copy()
    changed["temperature_evaporator_mean"] += 1.0  # not a column this model reads while running
    assert training_fingerprint(config, running) == training_fingerprint(config, changed)


@pytest.mark.parametrize("model_id", HOURLY)
def test_a_cohort_that_never_ran_beside_ones_that_did_reads_its_plain_statistics(model_id):
    """The model keeps the configured columns; in the idle cohort's windows they hold the plain
    statistics, so a cooling fault there is still flagged and the notes name the cohort."""
    config = load_model_config(model_id)
    frame = fleet()
    idle = frame["cohort"].eq("cohort_b")
    train = never_running(frame, idle)
    detector = build_detector(config).fit(train)
    assert detector.input_columns == build_detector(config).input_columns
    assert detector.plain_cohorts == {"cohort_b"}
    (note,) = detector.notes
    assert note.startswith("cohort_b: ") and "never above running_above" in note
    assert "read the plain statistics" in note and "duty_cycle missing" in note
    prepared = detector.prepare(train)
    rows = idle.to_numpy()
    running = np.log(np.clip(train.loc[rows, "current_compressor_mean"].to_numpy(), 1e-6, None))
    np.testing.assert_allclose(prepared.loc[rows, "current_compressor_running_mean"], running)
    assert prepared.loc[rows, "duty_cycle"].isna().all()  # no information where it never ran
    # the running cohorts read their running statistics as before
    others = prepared.loc[~rows, "temperature_evaporator_running_mean"]
    np.testing.assert_array_equal(others, train.loc[~rows, "temperature_evaporator_running_mean"])
    later = synthetic_features(devices=12, hours=4, seed=3, first_hour=4)
    later_idle = later["cohort"].eq("cohort_b")
    later = never_running(later, later_idle)
    device = later.loc[later_idle, "device_id"].iloc[0]
    faulty = later["device_id"].eq(device)
    later.loc[faulty, "temperature_evaporator_mean"] += (
        12 * train["temperature_evaporator_mean"].std()
    )
    scores = detector.score(later)
    flagged = scores[scores["anomaly_flag"]]
    assert device in set(flagged["device_id"])
    assert (flagged["device_id"] == device).mean() > 0.9
    # its evidence names the column it read
    evidence = flagged.loc[flagged["device_id"] == device, "contributor_detail"]
    assert evidence.str.startswith("temperature_evaporator_mean ").all()
    others = scores.loc[~scores["device_id"].isin(later.loc[later_idle, "device_id"])]
    plain = tuple(f"{p} " for _, p in detector.plain_of)
    assert not others["contributor_detail"].str.startswith(plain).any()
    # a request's rows (the serving path's arrays) read the same columns
    answer = detector.answer_columns(later)
    np.testing.assert_allclose(answer["anomaly_score"], scores["anomaly_score"])
    np.testing.assert_array_equal(answer["contributor_detail"], scores["contributor_detail"])


def test_a_cohort_that_never_ran_without_plain_statistics_is_named_and_nothing_is_read():
    config = load_model_config("pca_reconstruction")
    frame = fleet()
    frame = never_running(frame, frame["cohort"].eq("cohort_b"))
    detector = build_detector(config)
    plain = plain_statistics(detector.feature_columns, load_contract("device_features"))
    detector.fit(frame.drop(columns=plain))
    assert detector.plain_cohorts == frozenset()
    (note,) = detector.notes
    assert note.startswith("cohort_b: ") and "judged without the running-conditioned" in note


def test_a_compressor_that_ran_too_briefly_everywhere_falls_back_too():
    config = load_model_config("statistical_baseline")
    share = float(config.setting("running_share.min"))
    frame = fleet()
    frame["duty_cycle"] = share / 2
    detector = build_detector(config).fit(frame)
    (note,) = detector.notes
    assert f"less than running_share.min {share}" in note
    assert "replaced by plain statistics" in note


def test_plain_statistics_without_information_are_still_refused_with_both_reasons():
    config = load_model_config("isolation_forest")
    frame = never_running(fleet())
    detector = build_detector(config)
    for column in plain_statistics(detector.feature_columns, load_contract("device_features")):
        frame[column] = frame[column].iloc[0]
    with pytest.raises(NotTrainable) as refused:
        detector.fit(frame)
    reason = refused.value.reason
    assert "replaced by plain statistics" in reason
    assert "every training window reads the same value" in reason
    assert refused.value.setting == "features.sensors"


def test_without_the_plain_statistics_the_running_threshold_refusal_stays():
    config = load_model_config("statistical_baseline")
    frame = never_running(fleet())
    detector = build_detector(config)
    plain = plain_statistics(detector.feature_columns, load_contract("device_features"))
    with pytest.raises(NotTrainable) as refused:
        detector.fit(frame.drop(columns=plain))
    assert refused.value.setting == f"{running_sensor().name}.running_above"


def test_one_device_whose_fault_crossed_the_threshold_does_not_make_a_cohort_run():
    """A small-motor fleet where an overload drove one device over running_above for a while:
    the cohorts still never ran (most of their devices did not), in every model kind."""
    config = load_model_config("statistical_baseline")
    frame = fleet()
    overloaded = frame["device_id"].eq(frame["device_id"].iloc[0])
    frame = never_running(frame, ~overloaded)
    detector = build_detector(config).fit(frame)
    assert detector.feature_columns == plain_statistics(
        build_detector(config).feature_columns, load_contract("device_features")
    )
    (note,) = detector.notes
    devices = frame["device_id"].nunique()
    assert f"on only 1 of {devices} devices in training" in note


def test_one_running_device_in_an_idle_cohort_reads_the_plain_statistics_too():
    config = load_model_config("pca_reconstruction")
    frame = synthetic_features(devices=24, hours=4, seed=3)  # 7 devices in cohort_b
    idle = frame["cohort"].eq("cohort_b")
    overloaded = frame["device_id"].eq(frame.loc[idle, "device_id"].iloc[0])
    frame = never_running(frame, idle & ~overloaded)
    detector = build_detector(config).fit(frame)
    assert detector.plain_cohorts == {"cohort_b"}
    prepared = detector.prepare(frame)
    np.testing.assert_allclose(
        prepared.loc[overloaded.to_numpy(), "temperature_evaporator_running_mean"],
        frame.loc[overloaded, "temperature_evaporator_mean"],
    )
