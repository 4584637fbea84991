"""The device status from integer codes of the ids and one sort gives exactly what the pandas
groupings on the id strings gave (kept here as the reference): every column, bit for bit, on
scores with several models, NaN scores, missing ends, rows without a window start or a device,
devices with fewer windows than the trend, shuffled rows and both timestamp units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.alerts.device_status import (
    FALLING,
    RISING,
    UNKNOWN,
    TrendSettings,
    device_status,
    score_trends,
    trends_of,
    window_scores,
)

SETTINGS = TrendSettings.from_contract()
END = pd.Timestamp("2026-01-01T12:00:00Z")
WINDOW = pd.Timedelta(minutes=15)
TREND_COLUMNS = ["device_id", "latest_window_end", "latest_anomaly_score"]
TREND_COLUMNS += ["trend_slope_per_hour", "anomaly_trend", "trend_windows"]


def reference_window_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Highest score per device and window, by pandas groupings on the ids."""
    return scores.groupby(["device_id", "window_start"], as_index=False).agg(
        window_end=("window_end", "max"), score=("anomaly_score", "max")
    )


def reference_score_trends(windows: pd.DataFrame, settings: TrendSettings) -> pd.DataFrame:
    """Each device's sums over its last windows and its last window, by pandas groupings on the
    ids; the trend from them as the module computes it."""
    recent = windows.groupby("device_id", sort=False).tail(settings.windows)
    end = pd.to_datetime(recent["window_end"], utc=True)
    latest_end = end.groupby(recent["device_id"]).transform("max")
    x = ((end - latest_end).dt.total_seconds() / 3600.0).to_numpy()
    y = recent["score"].to_numpy(dtype=float)
    frame = {"device_id": recent["device_id"].to_numpy(), "n": 1.0, "x": x, "y": y}
    sums = pd.DataFrame(frame | {"xx": x * x, "xy": x * y}).groupby("device_id", sort=False).sum()
    last = recent.groupby("device_id", sort=False).tail(1).set_index("device_id")
    return trends_of(sums, last, settings)[TREND_COLUMNS]


def fleet_scores(seed: int, unit: str) -> pd.DataFrame:
    """Three models' scores of 60 devices over up to 12 windows, with the awkward rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(60):
        windows = int(rng.integers(1, 13))  # some devices have fewer than the trend's windows
        for w in range(windows):
            start = END - (windows - w) * WINDOW
            for model in ("if", "pca", "sb"):
                if rng.random() < 0.1:
                    continue  # a model that did not score this window
                rows.append(
                    {
                        "device_id": f"dev-{d:03d}",
                        "window_start": start,
                        "window_end": start + WINDOW,
                        "model_id": model,
                        "anomaly_score": float(rng.random()) * (1 + w / 10),
                    }
                )
    scores = pd.DataFrame(rows)
    n = len(scores)
    scores.loc[rng.random(n) < 0.05, "anomaly_score"] = np.nan
    scores.loc[rng.random(n) < 0.03, "window_end"] = pd.NaT
    scores.loc[rng.random(n) < 0.02, "window_start"] = pd.NaT
    scores.loc[rng.random(n) < 0.02, "device_id"] = None
    # one window whose every model's score is missing
    scores.loc[scores["device_id"].eq("dev-007"), "anomaly_score"] = np.nan
    for column in ("window_start", "window_end"):
        scores[column] = scores[column].astype(f"datetime64[{unit}, UTC]")
    return scores.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("unit", ["ns", "us"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_window_scores_and_trends_match_the_groupings_on_ids(seed, unit):
    scores = fleet_scores(seed, unit)

    windows = window_scores(scores)
    expected = reference_window_scores(scores)
    pd.testing.assert_frame_equal(windows, expected, check_exact=True)

    trends = score_trends(windows, SETTINGS)
    pd.testing.assert_frame_equal(
        trends, reference_score_trends(expected, SETTINGS), check_exact=True
    )
    assert set(trends["anomaly_trend"]) >= {RISING, FALLING, UNKNOWN}


def test_the_status_rows_are_those_of_the_groupings_on_ids(monkeypatch):
    scores = fleet_scores(4, "us")
    registry = pd.DataFrame(
        {
            "device_id": [f"dev-{d:03d}" for d in range(0, 70, 2)],
            "site_id": "S1",
            "cohort": "walk_in",
        }
    )
    alerts = pd.Series({"dev-004": 2, "dev-011": 1})

    status = device_status(registry, scores, alerts, END, SETTINGS)
    from refrig_assets.alerts import device_status as module

    monkeypatch.setattr(module, "window_scores", reference_window_scores)
    monkeypatch.setattr(module, "score_trends", reference_score_trends)
    pd.testing.assert_frame_equal(
        status, device_status(registry, scores, alerts, END, SETTINGS), check_exact=True
    )


def test_no_scored_row_gives_no_window():
    scores = fleet_scores(5, "ns").assign(window_start=pd.NaT)

    assert window_scores(scores).empty
    assert reference_window_scores(scores).empty
