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
NAT = np.iinfo(np.int64).min  # NaT as an integer stamp


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
    """Highest score of any model per device and window (model_scores rows in), in device and
    window-start order; rows without a device or a window start are left out."""
    if scores.empty:
        return pd.DataFrame(columns=["device_id", "window_start", "window_end", "score"])
    # Sorted codes of the keys and one sort, not a pandas grouping on the ids (hashing a
    # million id strings per grouping was most of the status step at 100K devices).
    device, ids = pd.factorize(scores["device_id"], sort=True)
    start, end = scores["window_start"], scores["window_end"]
    start_ns, end_ns = _stamps(start), _stamps(end)
    rows = np.flatnonzero((device >= 0) & (start_ns != NAT))
    if not len(rows):
        return pd.DataFrame(columns=["device_id", "window_start", "window_end", "score"])
    # Last in each window: its latest end (NaT sorts first, so a known end wins, as max skips it).
    rows = rows[np.lexsort((end_ns[rows], start_ns[rows], device[rows]))]
    device, start_ns = device[rows], start_ns[rows]
    opens = np.r_[True, (device[1:] != device[:-1]) | (start_ns[1:] != start_ns[:-1])]
    first = np.flatnonzero(opens)
    last = np.r_[first[1:], len(rows)] - 1
    score = np.fmax.reduceat(scores["anomaly_score"].to_numpy(dtype=float)[rows], first)
    return pd.DataFrame(
        {
            "device_id": ids.to_numpy()[device[first]],
            "window_start": start.iloc[rows[first]].reset_index(drop=True),
            "window_end": end.iloc[rows[last]].reset_index(drop=True),
            "score": score,
        }
    )


def _stamps(column: pd.Series) -> np.ndarray:
    """Integer stamps of a timestamp column, in its own unit (NaT: the smallest integer)."""
    return pd.DatetimeIndex(column).asi8


def score_trends(windows: pd.DataFrame, settings: TrendSettings) -> pd.DataFrame:
    """Per device: latest window end and score, slope per hour and trend of the last windows
    (``windows``: :func:`window_scores` rows, each device's in window order)."""
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
    # Groupings on integer codes of the ids, in the order the devices come (as sort=False).
    code, ids = pd.factorize(windows["device_id"], sort=False)
    from_end = pd.Series(code).groupby(code, sort=False).cumcount(ascending=False).to_numpy()
    recent = windows[from_end < settings.windows]
    code = code[from_end < settings.windows]
    end = pd.to_datetime(recent["window_end"], utc=True)
    latest_end = end.groupby(code).transform("max")
    x = ((end - latest_end).dt.total_seconds() / 3600.0).to_numpy()
    y = recent["score"].to_numpy(dtype=float)
    sums = (
        pd.DataFrame({"device": code, "n": 1.0, "x": x, "y": y, "xx": x * x, "xy": x * y})
        .groupby("device", sort=False)
        .sum()
    )
    sums.index = pd.Index(ids.to_numpy()[sums.index.to_numpy()], name="device_id")
    last = windows[from_end == 0].set_index("device_id")
    return trends_of(sums, last, settings)[columns]


def trends_of(sums: pd.DataFrame, last: pd.DataFrame, settings: TrendSettings) -> pd.DataFrame:
    """The trend rows from each device's sums over its recent windows (``sums``: n, x, y, xx,
    xy per device id, x in hours before its latest end) and its last window (``last``, by
    device id: window_end and score); the ids in the order of ``sums``."""
    denominator = sums["n"] * sums["xx"] - sums["x"] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (sums["n"] * sums["xy"] - sums["x"] * sums["y"]) / denominator
    slope = slope.where(denominator > 0)
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
    return out.rename_axis("device_id").reset_index()


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
