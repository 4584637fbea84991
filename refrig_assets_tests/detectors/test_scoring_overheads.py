"""Scoring's bookkeeping, cut for speed, gives what it gave before bit for bit: persistence on
window times of any unit, baseline positions looked up once per run of a device's rows, and
the scores frame built once."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.detectors.value_runs import factorize_runs, per_run, run_starts
from refrig_assets.scoring.score import cohort_of, score_windows
from tools.benchmarks.scoring import START, synthetic_features

HOURLY = ["isolation_forest", "statistical_baseline", "pca_reconstruction"]


def _sustained_in_nanoseconds(detector, frame: pd.DataFrame, score: np.ndarray) -> np.ndarray:
    """Detector.sustained as first written: window times converted to nanoseconds."""
    windows, need = detector.persistence
    devices = frame["device_id"].to_numpy()
    start = pd.DatetimeIndex(frame["window_start"].array).as_unit("ns").asi8
    span = (pd.DatetimeIndex(frame["window_end"].array).as_unit("ns").asi8 - start) * windows
    earlier = np.full((len(score), windows - 1), -np.inf)
    for lag in range(1, windows):
        same = (devices[lag:] == devices[:-lag]) & (start[lag:] - start[:-lag] < span[lag:])
        earlier[lag:, lag - 1] = np.where(same, score[:-lag], -np.inf)
    support = -np.sort(-earlier, axis=1)[:, need - 2]
    return np.where(np.isfinite(support), np.minimum(score, support), 0.0)


def _windows(seed: int, unit: str, end_unit: str) -> pd.DataFrame:
    """Sorted windows of a few devices with gaps (missing windows) and 1-15 minute lengths."""
    rng = np.random.default_rng(seed)
    rows = []
    for device in range(6):
        minutes = int(rng.choice([1, 5, 15]))
        slots = np.sort(rng.choice(60, size=int(rng.integers(1, 30)), replace=False))
        for slot in slots.tolist():
            start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=minutes * slot)
            rows.append((f"d{device}", start, start + pd.Timedelta(minutes=minutes)))
    frame = pd.DataFrame(rows, columns=["device_id", "window_start", "window_end"])
    frame["window_start"] = frame["window_start"].dt.as_unit(unit)
    frame["window_end"] = frame["window_end"].dt.as_unit(end_unit)
    return frame


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("unit", "end_unit"), [("us", "us"), ("ns", "ns"), ("s", "ms")])
def test_persistence_on_any_time_unit_is_the_nanosecond_arithmetic(seed, unit, end_unit):
    detector = build_detector(load_model_config("statistical_baseline"))
    assert detector.persistence[1] > 1  # else sustained() returns the scores untouched
    frame = _windows(seed, unit, end_unit)
    score = np.random.default_rng(seed).uniform(0, 5, len(frame))
    expected = _sustained_in_nanoseconds(detector, frame, score)
    got = detector.sustained(frame, score)
    assert got.tobytes() == expected.tobytes()
    assert (got != score).any() and (got > 0).any()  # persistence did cut and keep scores


def _score_windows_as_written(detector, version, features, scored_at, since):
    """score_windows as first written: the detector's frame of scores, then the contract's."""
    contract = load_contract("model_scores")
    out = detector.score(features, since=since)
    if out.empty:
        return contract.empty_frame()
    extra = {
        "model_id": detector.config.model_id,
        "model_version": str(version),
        "granularity": detector.config.granularity,
        "scored_at": pd.Timestamp(scored_at),
        "anomaly_flag": out["anomaly_flag"].astype(bool),
    }
    return pd.DataFrame(
        {c: extra[c] if c in extra else out[c] for c in contract.column_names}, index=out.index
    )


@pytest.fixture(scope="module")
def fitted():
    """Each hourly detector fitted on 3 hours of 30 devices, and the next 2 hours' features
    with the hour before them (some windows too incomplete to score, some flagged)."""
    features = synthetic_features(30, 5, seed=3)
    hour = pd.Timestamp(START) + pd.Timedelta(hours=3)
    scored = features[features["window_start"] >= hour - pd.Timedelta(hours=1)]
    scored = scored.reset_index(drop=True)
    scored.loc[::7, "sensor_completeness"] = 0.2
    scored.loc[::5, "quality_mask"] = 1
    scored.loc[3, "temperature_evaporator_mean"] += 40.0  # one window far off its baseline
    detectors = {}
    for model_id in HOURLY:
        detector = build_detector(load_model_config(model_id))
        detectors[model_id] = detector.fit(features[features["window_start"] < hour])
    return detectors, scored, hour


@pytest.mark.parametrize("model_id", HOURLY)
@pytest.mark.parametrize("since_hours", [None, 0, 1, 3])
def test_score_windows_is_the_frame_of_the_detectors_scores(fitted, model_id, since_hours):
    detectors, features, hour = fitted
    since = None if since_hours is None else hour + pd.Timedelta(hours=since_hours)
    at = datetime(2026, 1, 2, tzinfo=UTC)
    detector = detectors[model_id]
    expected = _score_windows_as_written(detector, "7", features, at, since)
    got = score_windows(detector, "7", features, at, since=since)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(expected.dtypes)
    if since_hours == 3:  # every window before since: nothing returned
        assert got.empty
    else:
        assert len(got) > 0 and got["anomaly_flag"].dtype == bool
        assert since is None or (got["window_start"] >= since).all()


def _values(kind: str, seed: int) -> np.ndarray:
    """Runs of repeated values of several kinds, missing values among them."""
    rng = np.random.default_rng(seed)
    names = np.array([f"dev-{i:03d}" for i in range(12)] + [None, np.nan], dtype=object)
    if kind == "numbers":
        names = np.array([*range(12), np.nan, np.nan], dtype=float)
    picks = rng.integers(0, len(names), 40)
    values = np.repeat(names[picks], rng.integers(1, 5, 40))
    if kind == "strings":  # equal strings as distinct objects, as read from a file
        values = np.array([v if not isinstance(v, str) else "".join(v) for v in values], object)
    return values


@pytest.mark.parametrize("kind", ["strings", "numbers"])
@pytest.mark.parametrize("seed", range(5))
def test_lookups_per_run_are_the_lookups_per_row(kind, seed):
    values = _values(kind, seed)
    index = pd.Index(pd.unique(values[::3])[::-1])
    assert per_run(values, index.get_indexer).tobytes() == index.get_indexer(values).tobytes()
    codes, uniques = factorize_runs(values)
    expected_codes, expected_uniques = pd.factorize(values)
    assert codes.tobytes() == expected_codes.tobytes()
    pd.testing.assert_index_equal(pd.Index(uniques), pd.Index(expected_uniques))
    assert len(run_starts(values)) < len(values)  # runs were there to be used


def test_values_that_do_not_compare_are_looked_up_row_by_row():
    values = np.array(["a", "a", pd.NA, pd.NA, "b"], dtype=object)
    assert run_starts(values) is None
    codes, uniques = factorize_runs(values)
    assert codes.tolist() == pd.factorize(values)[0].tolist()


@pytest.mark.parametrize("seed", range(4))
def test_cohorts_per_run_are_the_registry_lookup_per_window(seed):
    values = _values("strings", seed)
    ids = pd.Series(np.where(pd.isna(values), "dev-999", values).astype(object))
    registry = pd.DataFrame({"device_id": [f"dev-{i:03d}" for i in range(0, 12, 2)]})
    registry["cohort"] = [f"c{i % 3}" for i in range(len(registry))]
    expected = ids.map(registry.set_index("device_id")["cohort"]).fillna("unknown")
    assert cohort_of(ids, registry).tolist() == expected.tolist()
    assert "unknown" in expected.tolist() and expected.nunique() > 2
