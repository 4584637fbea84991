"""Sustained evidence: a device's window evidence adds up over its latest run of windows, less
a drift allowance per window, and is calibrated again on the training sequences. A lasting
moderate change reaches the flag threshold; one odd window and healthy devices do not."""

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import Detector, build_detector, sorted_rows
from refrig_assets.detectors.sustained import run_sums
from tools.benchmarks.scoring import START, synthetic_features

T0 = pd.Timestamp(START)
TRAIN_HOURS, HOURS = 4, 8
SHIFT_FROM = T0 + pd.Timedelta(hours=5)
DEVICE = "dev-000007"
FEATURE = "pressure_low_side_running_mean"


def rows(device: str, minutes: list[int]) -> pd.DataFrame:
    starts = [T0 + pd.Timedelta(minutes=m) for m in minutes]
    return pd.DataFrame(
        {
            "device_id": device,
            "window_start": starts,
            "window_end": [s + pd.Timedelta(minutes=15) for s in starts],
        }
    )


def test_run_sums_add_the_excess_over_a_bounded_run_of_one_device():
    frame = pd.concat(
        [rows("a", [0, 15, 30, 45, 60]), rows("b", [0, 15]), rows("c", [0, 60])]
        + [rows("d", [0, 15])],
        ignore_index=True,
    )
    evidence = np.array([0.5, 2, 2, 2, 0, 3, 3, 3, 3, 9, 2])
    sums = run_sums(frame, evidence, windows=3, allowance=1.0)
    # a: excess -0.5, 1, 1, 1, -1: the best run ending at each row, at most 3 rows long, less
    # its strongest row; a row not above the allowance has none. b does not continue a; c's
    # second window starts 4 window lengths after its first: no run. d: the extreme window is
    # the one left out.
    assert sums.tolist() == [0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0]
    assert not run_sums(frame, evidence, windows=1, allowance=1.0).any()


def with_sustained(windows: int, allowance: float) -> Detector:
    config = load_model_config("statistical_baseline")
    settings = {**config.settings, "sustained": {"windows": windows, "allowance": allowance}}
    return build_detector(replace(config, settings=settings))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_features(devices=150, hours=HOURS, seed=4)


@pytest.fixture(scope="module")
def train(frame) -> pd.DataFrame:
    return frame[frame["window_start"] < T0 + pd.Timedelta(hours=TRAIN_HOURS)]


@pytest.fixture(scope="module")
def detectors(train) -> dict[str, Detector]:
    spec = load_model_config("statistical_baseline").setting("sustained")
    return {
        "sustained": with_sustained(int(spec["windows"]), float(spec["allowance"])).fit(train),
        "window only": with_sustained(1, 0.0).fit(train),
    }


def shifted(frame: pd.DataFrame, train: pd.DataFrame, sigmas: float, windows: int):
    """``frame`` with DEVICE's suction pressure moved by ``sigmas`` of its own training spread
    (in logarithms, as the detector models pressures) for ``windows`` windows from SHIFT_FROM."""
    own = np.log(train.loc[train["device_id"] == DEVICE, FEATURE])
    out = frame.copy()
    end = SHIFT_FROM + pd.Timedelta(minutes=15 * windows)
    at = (out["device_id"] == DEVICE) & (out["window_start"] >= SHIFT_FROM)
    at &= out["window_start"] < end
    out.loc[at, FEATURE] *= float(np.exp(-sigmas * own.std()))
    return out


def flags(detector: Detector, frame: pd.DataFrame) -> pd.DataFrame:
    scores = detector.score(frame[frame["window_start"] >= T0 + pd.Timedelta(hours=TRAIN_HOURS)])
    return scores[scores["anomaly_flag"]]


def test_a_lasting_moderate_shift_is_flagged_only_with_sustained_evidence(detectors, frame, train):
    lasting = shifted(frame, train, sigmas=4.0, windows=8)
    found = flags(detectors["sustained"], lasting)
    assert set(found["device_id"]) == {DEVICE}
    # Flagged before the change is over, and no longer once it is.
    assert found["window_start"].min() > SHIFT_FROM
    assert found["window_start"].max() < SHIFT_FROM + pd.Timedelta(minutes=15 * 8)
    # No window alone is surprising enough for a fleet-size threshold.
    assert flags(detectors["window only"], lasting).empty


def test_one_odd_window_and_healthy_devices_do_not_flag(detectors, frame, train):
    assert flags(detectors["sustained"], frame).empty
    odd = shifted(frame, train, sigmas=8.0, windows=1)
    assert flags(detectors["sustained"], odd).empty


def test_a_run_of_one_window_without_allowance_is_persistence_alone(detectors, frame):
    detector = detectors["window only"]
    scored = frame[frame["window_start"] >= T0 + pd.Timedelta(hours=TRAIN_HOURS)]
    prepared = detector.prepare(scored)
    raw = detector.raw_scores(prepared)[0]
    evidence = detector.evidence(raw)
    assert np.array_equal(
        detector.sustained(prepared, evidence), detector.persistent(prepared, evidence)
    )


def test_evidence_does_not_add_up_beyond_the_conditions_training_saw(detectors, frame, train):
    detector = detectors["sustained"]
    context = "ambient_temperature_mean"
    assert context in detector.context_columns
    lasting = shifted(frame, train, sigmas=4.0, windows=8)
    prepared = sorted_rows(detector.prepare(lasting[lasting["device_id"] == DEVICE]))
    evidence = detector.evidence(detector.raw_scores(prepared)[0])
    inside = detector.sustained(prepared, evidence)
    assert (inside > detector.persistent(prepared, evidence)).any()
    # The same windows, had training seen only colder days than all of them: the model
    # extrapolates its ambient adjustment there, so only persistent evidence counts.
    colder = copy.copy(detector)
    low = prepared[context].min() - 1.0
    colder.context_ranges = {
        key: np.vstack([np.minimum(r[0], low - 1.0), np.minimum(r[1], low)])
        for key, r in detector.context_ranges.items()
    }
    assert np.array_equal(
        colder.sustained(prepared, evidence), detector.persistent(prepared, evidence)
    )
