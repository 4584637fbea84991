"""Scoring's bookkeeping, cut for speed, gives what it gave before bit for bit: persistence on
window times of any unit, baseline positions looked up once per run of a device's rows, and
the scores frame built once."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector

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
