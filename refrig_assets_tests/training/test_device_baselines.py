"""Per-device baselines: each device trains on its own first hours of clean windows (or on the
periods a file marks normal); a device without them yet is scored against its cohort, and a
retraining keeps the periods it recorded unless asked to choose again."""

import pandas as pd
import pytest
from support.fleet_world import simulated_fleet

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.training.baselines import (
    BaselineError,
    baseline_windows,
    choose_periods,
    read_ledger,
    read_normal_periods,
    write_ledger,
)

T0 = pd.Timestamp("2026-01-01T00:00Z")


def hours(h: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=h)


def windows(device: str, first: int, last: int, dirty: tuple[int, ...] = ()) -> pd.DataFrame:
    """Hourly windows of one device from hour ``first`` to ``last`` (exclusive)."""
    return pd.DataFrame(
        {
            "device_id": device,
            "window_start": [hours(h) for h in range(first, last)],
            "window_end": [hours(h + 1) for h in range(first, last)],
            "quality_mask": [1 if h in dirty else 0 for h in range(first, last)],
        }
    )


def test_each_device_trains_on_its_own_first_clean_hours():
    features = pd.concat(
        [windows("a", 0, 6, dirty=(1,)), windows("b", 3, 6), windows("c", 5, 6)],
        ignore_index=True,
    )
    periods = choose_periods(features, first_hours=2)
    # c has one hour so far: no baseline of its own yet.
    assert periods[["device_id", "start", "end"]].values.tolist() == [
        ["a", hours(0), hours(2)],
        ["b", hours(3), hours(5)],
    ]
    chosen = baseline_windows(features, periods)
    assert chosen[["device_id", "window_start"]].values.tolist() == [
        ["a", hours(0)],  # hour 1 of a is flagged: not a baseline
        ["b", hours(3)],
        ["b", hours(4)],
    ]


def test_retraining_keeps_recorded_baselines_unless_reset(tmp_path):
    ledger_path = tmp_path / "device_baselines.parquet"
    first = pd.concat([windows("a", 0, 6), windows("c", 5, 6)], ignore_index=True)
    write_ledger(choose_periods(first, first_hours=2), ledger_path)
    later = pd.concat([windows("a", 0, 12), windows("c", 5, 12)], ignore_index=True)
    kept = choose_periods(later, first_hours=4, ledger=read_ledger(ledger_path))
    assert kept[["device_id", "start", "end", "source"]].values.tolist() == [
        ["a", hours(0), hours(2), "first_2h"],  # a keeps what it trained on
        ["c", hours(5), hours(9), "first_4h"],  # c now has enough hours of its own
    ]
    fresh = choose_periods(later, first_hours=4, ledger=read_ledger(ledger_path), reset=True)
    assert fresh.set_index("device_id").loc["a", "end"] == hours(4)


def test_a_file_of_normal_periods_sets_baselines(tmp_path):
    path = tmp_path / "normal.csv"
    path.write_text("device_id,start,end\nb,2026-01-01T04:00Z,2026-01-01T06:00Z\n")
    features = pd.concat([windows("a", 0, 6), windows("b", 3, 6)], ignore_index=True)
    periods = choose_periods(features, first_hours=1, normal_periods=read_normal_periods(path))
    assert periods.set_index("device_id")["source"].to_dict() == {
        "b": "normal_periods",
        "a": "first_1h",
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("device,from,to\nb,1,2\n")
    with pytest.raises(BaselineError, match="device_id, start, end"):
        read_normal_periods(bad)


def test_a_device_without_its_own_baseline_is_scored_against_its_cohort(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "300")
    fleet = simulated_fleet(tmp_path, devices=6, hours=6, cadence_seconds=300, seed=2, faults=False)
    features = fleet.features
    late = features["device_id"].iloc[0]
    # The first device was commissioned four hours after the others.
    features = features[(features["device_id"] != late) | (features["window_start"] >= hours(4))]
    chosen = baseline_windows(features, choose_periods(features, first_hours=3))
    assert late not in set(chosen["device_id"])
    detector = build_detector(load_model_config("statistical_baseline")).fit(chosen)
    scores = detector.score(features)
    assert late in set(scores["device_id"])
    assert scores["anomaly_score"].between(0, 1).all()
