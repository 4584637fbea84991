"""Every detector in models/ on a small fleet of feature windows: shape, range, contributors,
persistence, determinism, persistence on disk — and a planted fault it must find."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.detectors.base import OUTPUT_COLUMNS, Detector, build_detector
from tools.benchmarks.scoring import START, synthetic_features

MODELS = all_model_ids()
TRAIN_HOURS, HOURS = 4, 7
FAULT_FROM = pd.Timestamp(START) + pd.Timedelta(hours=5)
FAULTY = ["dev-000003", "dev-000011"]
SHIFTED = "pressure_low_side_running_mean"


def fleet() -> pd.DataFrame:
    """150 healthy devices; from hour 5 two of them lose a third of their suction pressure."""
    frame = synthetic_features(devices=150, hours=HOURS, seed=3)
    fault = frame["device_id"].isin(FAULTY) & (frame["window_start"] >= FAULT_FROM)
    frame.loc[fault, SHIFTED] *= 0.65
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return fleet()


@pytest.fixture(scope="module")
def trained(frame) -> dict[str, Detector]:
    train = frame[frame["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=TRAIN_HOURS)]
    return {m: build_detector(load_model_config(m)).fit(train) for m in MODELS}


def test_the_four_detectors_are_configured():
    assert {"isolation_forest", "statistical_baseline", "autoencoder", "dbscan_cohort"} <= set(
        MODELS
    )


@pytest.mark.parametrize("model_id", MODELS)
def test_scores_are_calibrated_rows_with_sensor_contributors(model_id, trained, frame):
    scores = trained[model_id].score(frame)
    assert list(scores.columns) == OUTPUT_COLUMNS
    assert len(scores) > 0
    assert scores["anomaly_score"].between(0, 1).all()
    assert scores["confidence"].between(0, 1).all()
    threshold = trained[model_id].config.flag_threshold
    assert (scores["anomaly_flag"] == (scores["anomaly_score"] >= threshold)).all()
    sensors = set(load_contract("sensor_readings").sensor_columns) | {"duty_cycle"}
    for top in scores["top_contributors"].head(50):
        names = top.split(",")
        assert 1 <= len(names) <= 3 and set(names) <= sensors
    assert scores["contributor_detail"].str.len().gt(0).all()


def planted(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(windows of the faulty devices an hour into the fault, windows of healthy devices)."""
    after = scores[scores["window_start"] >= FAULT_FROM + pd.Timedelta(hours=1)]
    return after[after["device_id"].isin(FAULTY)], scores[~scores["device_id"].isin(FAULTY)]


@pytest.mark.parametrize("model_id", [m for m in MODELS if m != "isolation_forest"])
def test_the_planted_suction_pressure_drop_is_found_and_explained(model_id, trained, frame):
    faulty, healthy = planted(trained[model_id].score(frame))
    assert not healthy["anomaly_flag"].any()
    assert faulty["anomaly_flag"].all()
    assert faulty["anomaly_score"].min() > healthy["anomaly_score"].max()
    assert faulty["top_contributors"].str.startswith("pressure_low_side").all()
    assert faulty["contributor_detail"].str.startswith(SHIFTED).all()


def test_isolation_forest_ranks_the_planted_drop_above_healthy_windows(trained, frame):
    # An isolation forest measures how isolated a window is among the training windows, not how
    # far beyond them it lies: a change in one feature only ranks high, it does not saturate.
    faulty, healthy = planted(trained["isolation_forest"].score(frame))
    assert not healthy["anomaly_flag"].any()
    assert faulty["anomaly_score"].median() > healthy["anomaly_score"].quantile(0.99)
    assert faulty["top_contributors"].str.startswith("pressure_low_side").all()


@pytest.mark.parametrize("model_id", MODELS)
def test_same_data_seed_and_config_give_identical_scores(model_id, frame, trained):
    train = frame[frame["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=TRAIN_HOURS)]
    again = build_detector(load_model_config(model_id)).fit(train.copy())
    pd.testing.assert_frame_equal(trained[model_id].score(frame), again.score(frame))


@pytest.mark.parametrize("model_id", MODELS)
def test_a_saved_detector_scores_exactly_like_the_original(model_id, trained, frame, tmp_path):
    loaded = Detector.load(trained[model_id].save(tmp_path / model_id).parent)
    pd.testing.assert_frame_equal(trained[model_id].score(frame), loaded.score(frame))


def test_windows_below_the_completeness_floor_are_not_scored(trained, frame):
    sparse = frame.copy()
    thin = sparse["device_id"] == "dev-000020"
    sparse.loc[thin, "sensor_completeness"] = 0.3
    scores = trained["statistical_baseline"].score(sparse)
    assert "dev-000020" not in set(scores["device_id"])
    assert scores["device_id"].nunique() == 149


def test_one_odd_window_does_not_flag_but_a_lasting_change_does(trained, frame):
    detector = trained["statistical_baseline"]
    spike = frame.copy()
    at = pd.Timestamp(START) + pd.Timedelta(hours=4, minutes=30)
    one = (spike["device_id"] == "dev-000030") & (spike["window_start"] == at)
    spike.loc[one, SHIFTED] *= 0.5
    scores = detector.score(spike).set_index(["device_id", "window_start"])
    assert not scores.loc[("dev-000030", at), "anomaly_flag"]
    lasting = frame.copy()
    two = (lasting["device_id"] == "dev-000030") & lasting["window_start"].between(
        at, at + pd.Timedelta(minutes=15)
    )
    lasting.loc[two, SHIFTED] *= 0.5
    scores = detector.score(lasting).set_index(["device_id", "window_start"])
    assert scores.loc[("dev-000030", at + pd.Timedelta(minutes=15)), "anomaly_flag"]


def test_context_rows_feed_persistence_but_are_not_returned(trained, frame):
    detector = trained["statistical_baseline"]
    hour = FAULT_FROM + pd.Timedelta(hours=1)
    scores = detector.score(frame, since=hour)
    assert scores["window_start"].min() == hour
    first = scores[(scores["window_start"] == hour) & scores["device_id"].isin(FAULTY)]
    assert first["anomaly_flag"].all()  # supported by the windows of the hour before
    alone = detector.score(frame[frame["window_start"] >= hour], since=hour)
    first_alone = alone[(alone["window_start"] == hour) & alone["device_id"].isin(FAULTY)]
    assert not first_alone["anomaly_flag"].any()


def _request_cases(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Few windows, as online requests send them."""
    late = frame[frame["window_start"] >= FAULT_FROM]
    one = late[late["device_id"] == FAULTY[0]].reset_index(drop=True)
    two = late[late["device_id"].isin(["dev-000020", FAULTY[1]])].reset_index(drop=True)
    gaps = one.copy()
    gaps.loc[1, ["sensor_completeness"]] = 0.2  # below the floor: not scored
    gaps.loc[2, SHIFTED] = np.nan
    gaps.loc[3, "duty_cycle"] = 0.05  # running features blanked
    return {
        "one device": one,
        "two devices": two,
        "newcomer": one.assign(device_id="dev-new"),
        "gaps": gaps,
        "out of order": two.iloc[::-1].reset_index(drop=True),
        "single window": one.head(1),
        "nothing scorable": one.head(2).assign(sensor_completeness=0.1),
    }


@pytest.mark.parametrize("model_id", MODELS)
def test_a_requests_few_windows_are_scored_exactly_as_the_batch_path_scores_them(
    model_id, trained, frame
):
    detector = trained[model_id]
    for name, rows in _request_cases(frame).items():
        expected = detector.score(rows)
        for _ in range(2):  # again: what the first call kept of the model's state is the same
            found = detector.answer_columns(rows)
            if expected.empty:
                assert found is None, name
            else:
                assert found is not None, name
                pd.testing.assert_frame_equal(
                    pd.DataFrame(found), expected, check_exact=True, obj=name
                )


def test_a_device_without_history_is_judged_against_its_cohort(trained, frame):
    newcomer = frame[frame["device_id"] == "dev-000040"].assign(device_id="dev-new")
    scores = trained["statistical_baseline"].score(newcomer)
    assert len(scores) == len(newcomer)
    assert not scores["anomaly_flag"].any()
    assert np.isfinite(scores["anomaly_score"]).all()


def test_dbscan_scores_one_profile_per_device_and_hour(trained, frame):
    scores = trained["dbscan_cohort"].score(frame)
    assert len(scores) == 150 * HOURS
    assert ((scores["window_end"] - scores["window_start"]) == pd.Timedelta(hours=1)).all()
    assert trained["dbscan_cohort"].describe()["groups"] >= 1


def test_a_fifth_model_is_one_class_and_one_file(tmp_path: Path, frame):
    from refrig_assets.core.settings import MODELS_DIR
    from refrig_assets.detectors.base import register_detector

    @register_detector
    class DutyCycleDrift(Detector):
        """How far the duty cycle is from the fleet median, in fleet spreads."""

        kind = "duty_cycle_drift"

        def fit_raw(self, frame):
            x = frame["duty_cycle"].to_numpy()
            self.center, self.spread = np.median(x), np.std(x) or 1.0
            return np.abs(x - self.center) / self.spread

        def raw_scores(self, frame):
            z = (frame[self.feature_columns].to_numpy() - self.center) / self.spread
            return np.abs(z[:, 0]), z, ["{value} spreads {direction} the fleet"]

    (tmp_path / "_defaults.yaml").write_text((MODELS_DIR / "_defaults.yaml").read_text())
    (tmp_path / "duty_drift.yaml").write_text(
        "model_id: duty_drift\ndetector: duty_cycle_drift\ngranularity: fleet\n"
        "schedule: hourly\nfeatures: {extra: [duty_cycle]}\n"
    )
    detector = build_detector(load_model_config("duty_drift", tmp_path)).fit(frame)
    scores = detector.score(frame)
    assert scores["anomaly_score"].between(0, 1).all()
    assert set(scores["top_contributors"]) == {"duty_cycle"}


@pytest.mark.parametrize("model_id", ["statistical_baseline", "isolation_forest"])
def test_a_device_hour_with_suspect_units_is_a_quality_finding_not_a_fault(model_id, trained):
    """A device sending psi in a kPa column reads as a wild fault; its windows carry
    UNIT_SUSPECT and are left unscored instead of paging as a refrigeration fault."""
    from refrig_assets.quality.rules import flag_bit

    frame = synthetic_features(devices=150, hours=HOURS, seed=3)
    wrong = (frame["device_id"] == "dev-000007") & (frame["window_start"] >= FAULT_FROM)
    pressure = [c for c in frame.columns if c.startswith("pressure_low_side_")]
    frame.loc[wrong, pressure] *= 0.145  # kPa read as psi
    detector = trained[model_id]

    unflagged = detector.score(frame)
    assert unflagged[unflagged["device_id"] == "dev-000007"]["anomaly_flag"].any()

    frame.loc[wrong, "quality_mask"] = frame.loc[wrong, "quality_mask"] | flag_bit("UNIT_SUSPECT")
    scored = detector.score(frame)
    suspect_rows = scored["device_id"].eq("dev-000007") & (scored["window_start"] >= FAULT_FROM)
    assert not suspect_rows.any()
    assert scored["device_id"].eq("dev-000003").any()  # other devices are scored as before


def test_a_device_baseline_without_any_device_history_centres_every_row_on_the_fleet():
    # One window per device (a fleet trained on a very short range): no device has enough
    # history for a baseline of its own, so every row, in training and after, is judged
    # against the fleet's centre instead of failing.
    from refrig_assets.detectors.normalise import DeviceBaseline

    frame = pd.DataFrame(
        {
            "device_id": [f"d{i}" for i in range(6)],
            "cohort": ["a", "a", "a", "b", "b", "b"],
            "x": [1.0, 2.0, 3.0, 10.0, 11.0, 12.0],
        }
    )
    baseline = DeviceBaseline(min_device_windows=4).fit(frame, ["x"])
    assert not baseline.known(frame).any()
    residual = baseline.transform(frame, in_sample=True)
    assert residual.shape == (6, 1)
    assert np.isfinite(residual).all()
    assert (np.diff(residual[:, 0]) > 0).all()  # same centre for all: order of x is kept
