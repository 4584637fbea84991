"""Device status: latest anomaly score, its trend over recent windows, open alerts per device."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from refrig_assets.alerts.device_status import (
    TrendSettings,
    device_status,
    score_trends,
    window_scores,
)
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.device_registry import conform_registry

SETTINGS = TrendSettings.from_contract()
END = pd.Timestamp("2026-01-01T12:00:00Z")
WINDOW = pd.Timedelta(minutes=15)
HOUR_SLOPE = SETTINGS.tolerance_per_hour
PER_WINDOW = WINDOW / pd.Timedelta(hours=1)


def scores(device: str, values: list[float], model: str = "m1") -> list[dict]:
    """One score per window, the last window ending at END."""
    start = END - len(values) * WINDOW
    return [
        {
            "device_id": device,
            "window_start": start + i * WINDOW,
            "window_end": start + (i + 1) * WINDOW,
            "model_id": model,
            "anomaly_score": v,
        }
        for i, v in enumerate(values)
    ]


def line(slope_per_hour: float, n: int = SETTINGS.windows, base: float = 0.4) -> list[float]:
    return [base + slope_per_hour * PER_WINDOW * i for i in range(n)]


def trends(*rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([r for group in rows for r in group])
    return score_trends(window_scores(frame), SETTINGS).set_index("device_id")


def test_trend_settings_come_from_the_contract():
    raw = load_contract("device_status").settings
    assert SETTINGS == TrendSettings(
        raw["trend_windows"], raw["trend_min_windows"], raw["trend_tolerance_per_hour"]
    )


def test_rising_falling_and_stable_by_the_slope_against_the_tolerance():
    out = trends(
        scores("up", line(HOUR_SLOPE * 1.5)),
        scores("down", line(-HOUR_SLOPE * 1.5)),
        scores("flat", line(HOUR_SLOPE * 0.5)),
        scores("dip", line(-HOUR_SLOPE * 0.5)),
    )
    assert out["anomaly_trend"].to_dict() == {
        "up": "rising",
        "down": "falling",
        "flat": "stable",
        "dip": "stable",
    }
    assert out.loc["up", "trend_slope_per_hour"] == pytest.approx(HOUR_SLOPE * 1.5)


def test_only_the_last_trend_windows_count():
    old_fall = line(-HOUR_SLOPE * 3, n=6, base=0.9)
    recent_rise = line(HOUR_SLOPE * 2, n=SETTINGS.windows, base=0.1)
    out = trends(scores("d", old_fall + recent_rise))
    assert out.loc["d", "anomaly_trend"] == "rising"
    assert out.loc["d", "trend_windows"] == SETTINGS.windows


def test_too_few_windows_is_unknown():
    out = trends(scores("d", line(HOUR_SLOPE * 5, n=SETTINGS.min_windows - 1)))
    assert out.loc["d", "anomaly_trend"] == "unknown"
    assert np.isnan(out.loc["d", "trend_slope_per_hour"])


def test_latest_score_is_the_highest_model_score_of_the_latest_window():
    out = trends(scores("d", [0.2, 0.3, 0.5]), scores("d", [0.9, 0.1, 0.7], model="m2"))
    assert out.loc["d", "latest_anomaly_score"] == pytest.approx(0.7)
    assert out.loc["d", "latest_window_end"] == END


def test_status_covers_every_registered_device_with_open_alert_counts():
    registry = conform_registry(
        pd.DataFrame({"device_id": ["a", "b", "c"], "site_id": "s1", "cohort": "reach_in"})
    )
    frame = pd.DataFrame(scores("a", line(HOUR_SLOPE * 2)) + scores("z", [0.5] * 8))
    open_alerts = pd.Series({"a": 2, "c": 1})

    status = device_status(registry, frame, open_alerts, END, SETTINGS).set_index("device_id")

    assert list(status.index) == ["a", "b", "c", "z"]  # z scored but not registered
    assert status["open_alert_count"].to_dict() == {"a": 2, "b": 0, "c": 1, "z": 0}
    assert status.loc["b", "anomaly_trend"] == "unknown"
    assert np.isnan(status.loc["b", "latest_anomaly_score"])
    assert status.loc["z", "site_id"] == "unknown"
    assert (status["as_of"] == END).all()
    assert load_contract("device_status").validate(status.reset_index()).empty


def alerts(devices: list[str], suppressed: list[bool], created: list[pd.Timestamp]):
    """Minimal device_alerts rows, ids alert-0, alert-1, ..."""
    n = len(devices)
    return pd.DataFrame(
        {
            "alert_id": [f"alert-{i}" for i in range(n)],
            "device_id": devices,
            "site_id": "s1",
            "cohort": "c",
            "window_start": created,
            "window_end": created,
            "source": "batch",
            "alert_type": "ANOMALY_DETECTED",
            "severity": "HIGH",
            "max_score": 0.9,
            "models_flagging": 2,
            "top_contributors": "x",
            "explanation": "x",
            "model_versions": "m@1",
            "alert_created_at": created,
            "sla_deadline": [c + pd.Timedelta(hours=2) for c in created],
            "escalation_level": "L1",
            "suppressed": suppressed,
            "feature_partition": "p",
            "run_id": "r",
        }
    )


def test_open_alert_counts_skip_closed_and_suppressed_alerts(tmp_path):
    store = AlertStore(f"sqlite:///{tmp_path / 'a.db'}")
    before, after = END - pd.Timedelta(hours=1), END + pd.Timedelta(hours=1)
    store.upsert(
        alerts(
            ["a", "a", "a", "b", "c"],
            [False, False, True, False, False],
            [before, before, before, before, after],
        )
    )
    store.resolve("alert-1", "ana")
    store.acknowledge("alert-3", "ana")

    assert store.open_alert_counts().to_dict() == {"a": 1, "b": 1, "c": 1}
    assert store.open_alert_counts(created_before=END).to_dict() == {"a": 1, "b": 1}


def test_the_asset_writes_a_status_partition_from_the_last_hours_of_scores(refrig_home):
    from refrig_assets.defs.alerts.device_status import device_status_asset
    from refrig_assets.defs.shared.resources import RefrigResource

    s = get_settings()
    store = ParquetStore(s.data_dir)
    store.write(
        "device_registry",
        None,
        conform_registry(pd.DataFrame({"device_id": ["a", "b"], "site_id": "s1", "cohort": "c"})),
    )
    rising = pd.DataFrame(scores("a", line(HOUR_SLOPE * 2)) + scores("b", [0.3] * 8))
    rising = rising.assign(
        model_id="statistical_baseline",
        model_version="1",
        granularity="device",
        anomaly_flag=False,
        top_contributors="x",
        contributor_detail="x",
        confidence=1.0,
        scored_at=END,
    )
    for hour_start in (END - pd.Timedelta(hours=2), END - pd.Timedelta(hours=1)):
        part = rising[
            (rising["window_start"] >= hour_start)
            & (rising["window_start"] < hour_start + pd.Timedelta(hours=1))
        ]
        store.write("statistical_baseline_scores", hour_start.strftime("%Y-%m-%d-%H:%M"), part)

    result = dg.materialize(
        [device_status_asset],
        partition_key="2026-01-01-11:00",
        resources={"refrig": RefrigResource()},
    )

    assert result.success
    status = store.read("device_status", "2026-01-01-11:00").set_index("device_id")
    assert status["anomaly_trend"].to_dict() == {"a": "rising", "b": "stable"}
    assert status.loc["a", "trend_windows"] == SETTINGS.windows
