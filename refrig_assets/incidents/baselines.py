"""Device and cohort baselines the probable-cause signatures compare windows with.

A baseline of a feature is a centre and a spread:

* centre: the device's median over its recent windows (``baseline.lookback_hours`` of
  device_features before the partition); a device with fewer than ``min_device_windows``
  values uses its cohort's centre (median of the device medians), a cohort without any the
  fleet's;
* spread: the cohort's pooled within-device spread (MAD x 1.4826 of value - device median),
  at least ``min_scale_share_of_fleet`` of the fleet's. One device's own spread over a day is
  too noisy to divide by; the cohort's is not.

These are the same robust statistics the statistical_baseline detector keeps for its model
features (``detectors/normalise.DeviceBaseline``), computed here for the cause features, which
are not model inputs (starts per hour, door streaks, reading counts, idle current, ...), and
without waiting for a training run. ``defrost_interval_hours`` is the device's observed hours
per defrost (with at least ``derived.defrost.min_defrosts`` defrosts).

The result is one wide frame: ``scope`` (device | cohort | fleet), ``key`` (device id, cohort
name, ``*``), ``windows`` and ``center:<feature>`` / ``scale:<feature>`` per feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents.signatures import SignatureTable

MAD_TO_SIGMA = 1.4826
FLEET = "*"
DEFROST_INTERVAL = "defrost_interval_hours"
DEFROST_COUNT = "defrost_count"
DEFROST_MINUTES = "defrost_minutes"
TINY = 1e-9


def running_features() -> set[str]:
    """device_features columns computed over running readings only."""
    return {
        c.name
        for c in load_contract("device_features").columns
        if c.extra.get("condition") == "running"
    }


def usable_values(
    frame: pd.DataFrame, features: list[str], running_min_duty: float
) -> pd.DataFrame:
    """The feature values a baseline or a condition may use: running-conditioned features
    only where the compressor ran for at least ``running_min_duty`` of the window."""
    values = pd.DataFrame(
        {f: pd.to_numeric(frame[f], errors="coerce") if f in frame else np.nan for f in features},
        index=frame.index,
    ).astype(float)
    running = [f for f in features if f in running_features()]
    if running and "duty_cycle" in frame:
        short = ~(pd.to_numeric(frame["duty_cycle"], errors="coerce") >= running_min_duty)
        values.loc[short.to_numpy(), running] = np.nan
    return values


def empty_baselines(features: list[str]) -> pd.DataFrame:
    """A baselines frame without rows (every condition needing a baseline stays unevaluated)."""
    cols = ["scope", "key", "windows"]
    cols += [f"{p}:{f}" for f in features for p in ("center", "scale")]
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("scope", "key") else float) for c in cols}
    )


def build_baselines(history: pd.DataFrame, table: SignatureTable) -> pd.DataFrame:
    """Baselines of every feature the table compares with, from ``history`` (device_features
    rows with ``cohort``; rows without a cohort count as cohort ``unknown``)."""
    features = table.baseline_features()
    computed = [f for f in features if f != DEFROST_INTERVAL]
    if history.empty:
        return empty_baselines(features)
    settings = table.baseline
    cohort = (
        history["cohort"].fillna("unknown").astype(str)
        if "cohort" in history
        else pd.Series("unknown", index=history.index)
    )
    values = usable_values(history, computed, settings["running_min_duty"])
    values[DEFROST_INTERVAL] = np.nan
    devices = history["device_id"].astype(str).to_numpy()
    grouped = values.groupby(devices)
    median = grouped.median()
    enough = grouped.count() >= settings["min_device_windows"]
    median = median.where(enough)
    median[DEFROST_INTERVAL] = _defrost_interval(history, devices, table)
    device_cohort = cohort.groupby(devices).first().reindex(median.index)
    residual = values.to_numpy() - median.reindex(devices).to_numpy()
    fleet_scale = _mad(residual)
    scale = {}
    for name in pd.unique(cohort.to_numpy()):
        rows = (cohort == name).to_numpy()
        scale[name] = np.maximum(
            np.nan_to_num(_mad(residual[rows]), nan=0.0),
            settings["min_scale_share_of_fleet"] * np.nan_to_num(fleet_scale, nan=0.0),
        )
        scale[name] = np.maximum(scale[name], TINY)
    fleet_scale = np.maximum(np.nan_to_num(fleet_scale, nan=0.0), TINY)
    columns = list(median.columns)
    cohort_center = median.groupby(device_cohort.to_numpy()).median()
    counts = grouped.size()

    def block(scope: str, keys, centers: np.ndarray, scales: np.ndarray, windows) -> pd.DataFrame:
        data = {"scope": scope, "key": list(keys), "windows": np.asarray(windows, dtype=float)}
        for j, f in enumerate(columns):
            data[f"center:{f}"] = centers[:, j]
            data[f"scale:{f}"] = scales[:, j]
        return pd.DataFrame(data)

    dev_scales = np.vstack([scale[c] for c in device_cohort.to_numpy()])
    parts = [
        block("device", median.index, median.to_numpy(), dev_scales, counts.to_numpy()),
        block(
            "cohort",
            cohort_center.index,
            cohort_center.to_numpy(),
            np.vstack([scale[c] for c in cohort_center.index]),
            device_cohort.value_counts().reindex(cohort_center.index).to_numpy(),
        ),
        block(
            "fleet",
            [FLEET],
            median.median().to_numpy()[None, :],
            fleet_scale[None, :],
            [len(median)],
        ),
    ]
    out = pd.concat(parts, ignore_index=True)
    # The spread of the interval is not used (conditions on it are ratios).
    return out[empty_baselines(features).columns]


def _mad(residual: np.ndarray) -> np.ndarray:
    if not len(residual):
        return np.full(residual.shape[1], np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.abs(residual), axis=0) * MAD_TO_SIGMA


def _defrost_interval(
    history: pd.DataFrame, devices: np.ndarray, table: SignatureTable
) -> pd.Series:
    """Observed hours per defrost, per device (NaN with fewer than ``min_defrosts``)."""
    if DEFROST_COUNT not in history:
        return pd.Series(np.nan, index=pd.unique(devices))
    hours = (
        pd.to_datetime(history["window_end"], utc=True)
        - pd.to_datetime(history["window_start"], utc=True)
    ).dt.total_seconds() / 3600
    frame = pd.DataFrame(
        {"hours": hours.to_numpy(), "defrosts": pd.to_numeric(history[DEFROST_COUNT]).to_numpy()},
    )
    sums = frame.groupby(devices).sum()
    enough = sums["defrosts"] >= table.derived["defrost"]["min_defrosts"]
    return (sums["hours"] / sums["defrosts"].where(enough)).astype(float)


def lookup(
    baselines: pd.DataFrame, device_ids: np.ndarray, cohorts: np.ndarray, feature: str, *, own: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and spread of ``feature`` for each row, and which level they came from
    (2 device, 1 cohort, 0 fleet, -1 none). ``own=False`` skips the device level."""
    n = len(device_ids)
    center = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    level = np.full(n, -1, dtype=np.int8)
    ccol, scol = f"center:{feature}", f"scale:{feature}"
    if baselines.empty or ccol not in baselines:
        return center, scale, level
    levels = [(0, "fleet", np.full(n, FLEET, dtype=object)), (1, "cohort", cohorts)]
    if own:
        levels.append((2, "device", device_ids))
    for code, scope, keys in levels:
        part = baselines[baselines["scope"] == scope]
        if part.empty:
            continue
        at = pd.Index(part["key"].astype(str)).get_indexer(keys)
        found = at >= 0
        c = np.where(found, part[ccol].to_numpy(dtype=float)[np.maximum(at, 0)], np.nan)
        s = np.where(found, part[scol].to_numpy(dtype=float)[np.maximum(at, 0)], np.nan)
        use = ~np.isnan(c)
        center[use], level[use] = c[use], code
        # A device's spread is its cohort's; keep the cohort's where the device row lacks one.
        s_use = ~np.isnan(s)
        scale[s_use] = s[s_use]
    return center, scale, level
