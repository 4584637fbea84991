"""Device status: each device's latest anomaly score, whether it is rising, and its open alerts.

The window score of a device is the highest score any model gave that window. The trend is the
least-squares slope of the last ``trend_windows`` window scores against time, per hour, judged
against ``trend_tolerance_per_hour`` (contracts/device_status.yaml), so "rising" means the same
whatever the window length or the number of models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract

RISING, STABLE, FALLING, UNKNOWN = "rising", "stable", "falling", "unknown"
# The model_scores columns the status reads (:func:`window_scores`).
SCORE_COLUMNS = ["device_id", "window_start", "window_end", "anomaly_score"]


@dataclass(frozen=True)
class TrendSettings:
    """How many windows the trend looks at and the slope that counts as a change."""

    windows: int
    min_windows: int
    tolerance_per_hour: float

    @classmethod
    def from_contract(cls) -> TrendSettings:
        """The trend settings of contracts/device_status.yaml."""
        s = load_contract("device_status").settings
        return cls(
            int(s["trend_windows"]),
            int(s["trend_min_windows"]),
            float(s["trend_tolerance_per_hour"]),
        )


def window_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Highest score of any model per device and window (model_scores rows in)."""
    if scores.empty:
        return pd.DataFrame(columns=["device_id", "window_start", "window_end", "score"])
    # The grouping's keys come sorted (device, then window start): no second sort needed.
    return scores.groupby(["device_id", "window_start"], as_index=False).agg(
        window_end=("window_end", "max"), score=("anomaly_score", "max")
    )


def score_trends(windows: pd.DataFrame, settings: TrendSettings) -> pd.DataFrame:
    """Per device: latest window end and score, slope per hour and trend of the last windows."""
    columns = [
        "device_id",
        "latest_window_end",
        "latest_anomaly_score",
        "trend_slope_per_hour",
        "anomaly_trend",
        "trend_windows",
    ]
    if windows.empty:
        return pd.DataFrame(columns=columns)
    recent = windows.groupby("device_id", sort=False).tail(settings.windows)
    end = pd.to_datetime(recent["window_end"], utc=True)
    latest_end = end.groupby(recent["device_id"]).transform("max")
    x = ((end - latest_end).dt.total_seconds() / 3600.0).to_numpy()
    y = recent["score"].to_numpy(dtype=float)
    sums = (
        pd.DataFrame(
            {
                "device_id": recent["device_id"].to_numpy(),
                "n": 1.0,
                "x": x,
                "y": y,
                "xx": x * x,
                "xy": x * y,
            }
        )
        .groupby("device_id", sort=False)
        .sum()
    )
    denominator = sums["n"] * sums["xx"] - sums["x"] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (sums["n"] * sums["xy"] - sums["x"] * sums["y"]) / denominator
    slope = slope.where(denominator > 0)
    last = recent.groupby("device_id", sort=False).tail(1).set_index("device_id")
    out = pd.DataFrame(
        {
            "latest_window_end": pd.to_datetime(last["window_end"], utc=True),
            "latest_anomaly_score": last["score"].astype(float),
            "trend_slope_per_hour": slope,
            "trend_windows": sums["n"].astype("int64"),
        }
    )
    enough = out["trend_windows"] >= settings.min_windows
    out["anomaly_trend"] = np.select(
        [
            ~enough | out["trend_slope_per_hour"].isna(),
            out["trend_slope_per_hour"] > settings.tolerance_per_hour,
            out["trend_slope_per_hour"] < -settings.tolerance_per_hour,
        ],
        [UNKNOWN, RISING, FALLING],
        STABLE,
    )
    out.loc[~enough, "trend_slope_per_hour"] = np.nan
    return out.rename_axis("device_id").reset_index()[columns]


def device_status(
    registry: pd.DataFrame,
    scores: pd.DataFrame,
    open_alerts: pd.Series,
    as_of: pd.Timestamp,
    settings: TrendSettings | None = None,
) -> pd.DataFrame:
    """The device_status rows: every registered device plus any scored one, with its latest
    score and trend (``scores``: model_scores rows of recent windows, up to ``as_of``) and its
    open alert count (``open_alerts``: count per device id)."""
    settings = settings or TrendSettings.from_contract()
    contract = load_contract("device_status")
    trends = score_trends(window_scores(scores), settings)
    devices = (
        pd.Index(registry["device_id"].astype(str))
        .append(pd.Index(trends["device_id"].astype(str)))
        .unique()
    )
    reg = registry.drop_duplicates("device_id", keep="last").set_index("device_id")
    out = pd.DataFrame({"device_id": devices})
    out["site_id"] = out["device_id"].map(reg["site_id"]).fillna("unknown").astype(str)
    out["cohort"] = out["device_id"].map(reg["cohort"]).fillna("unknown").astype(str)
    out = out.merge(trends, on="device_id", how="left")
    out["latest_window_end"] = pd.to_datetime(out["latest_window_end"], utc=True)
    out["latest_anomaly_score"] = out["latest_anomaly_score"].astype(float)
    out["trend_slope_per_hour"] = out["trend_slope_per_hour"].astype(float)
    out["anomaly_trend"] = out["anomaly_trend"].fillna(UNKNOWN).astype(str)
    out["trend_windows"] = out["trend_windows"].fillna(0).astype("int64")
    out["open_alert_count"] = (
        out["device_id"].map(open_alerts).fillna(0).astype("int64")
        if len(open_alerts)
        else np.int64(0)
    )
    out["open_alert_count"] = out["open_alert_count"].astype("int64")
    out["as_of"] = (
        pd.Timestamp(as_of).tz_convert("UTC")
        if pd.Timestamp(as_of).tzinfo
        else pd.Timestamp(as_of, tz="UTC")
    )
    return out[contract.column_names].sort_values("device_id", ignore_index=True)
