"""A reference implementation of the feature windows in plain vectorized pandas.

It exists to be measured against the project's feature step (the DuckDB SQL of
:func:`refrig_assets.features.windows.feature_sql`): same inputs, same contract-driven columns, same
results within float tolerance (the benchmark reports the largest difference). It is written
the way a careful pandas user would write it — integer group keys, one ``groupby`` per statistic
family, no per-row Python — so the comparison is with good pandas, not with a strawman.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.features.windows import expected_readings_per_window, window_minutes


def _epoch_seconds(ts: pd.Series) -> np.ndarray:
    return (
        ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)
        / 1e9
    )


def _flag_names(masks: pd.Series) -> pd.Series:
    names = quality_flag_names()
    unique = pd.unique(masks.to_numpy())
    text = {m: ",".join(n for i, n in enumerate(names) if int(m) & (1 << i)) for m in unique}
    return masks.map(text)


def pandas_features(
    clean: pd.DataFrame, *, window_min: int | None = None, cadence_seconds: int | None = None
) -> pd.DataFrame:
    """device_features from a clean_readings frame, computed with pandas/numpy only."""
    readings = load_contract("sensor_readings")
    contract = load_contract("device_features")
    wmin = window_minutes(window_min)
    wsec = wmin * 60
    expected = expected_readings_per_window(wmin, cadence_seconds)
    sensors = readings.sensor_columns

    epoch = _epoch_seconds(clean["ts"])
    bucket = (np.floor(epoch / wsec) * wsec).astype(np.int64)
    device_codes, devices = pd.factorize(clean["device_id"], sort=True)
    bucket_codes, buckets = pd.factorize(bucket, sort=True)
    key = device_codes.astype(np.int64) * len(buckets) + bucket_codes
    minutes = (epoch - bucket) / 60.0  # minutes into the window: slopes need no epoch offset

    values = {}
    for c in readings.columns_with_role("sensor"):
        v = clean[c.name].to_numpy(dtype=float)
        if c.range:
            v = np.where((v >= c.range[0]) & (v <= c.range[1]), v, np.nan)
        values[c.name] = v
    running_spec = [c for c in readings.columns_with_role("sensor") if "running_above" in c.extra]
    running = None
    if running_spec:
        current = values[running_spec[0].name]
        running = current > float(running_spec[0].extra["running_above"])

    frame = pd.DataFrame(values)
    grouped = frame.groupby(key, sort=True)
    stats = {
        "mean": grouped.mean(),
        "std": grouped.std(ddof=1),
        "min": grouped.min(),
        "max": grouped.max(),
        "last": grouped.last(),  # last non-null value; rows are in time order per device
    }
    valid = frame.notna()
    x = pd.DataFrame({s: np.where(valid[s], minutes, np.nan) for s in sensors})
    xy = x * frame
    n = valid.groupby(key, sort=True).sum()
    sx, sy = x.groupby(key, sort=True).sum(), frame.groupby(key, sort=True).sum()
    sxx, sxy = (x * x).groupby(key, sort=True).sum(), xy.groupby(key, sort=True).sum()
    denom = sxx - sx * sx / n
    stats["slope"] = ((sxy - sx * sy / n) / denom.where(denom > 1e-12)).where(n >= 2)
    if running is not None:
        while_running = np.where(running[:, None], frame.to_numpy(), np.nan)
        stats["running_mean"] = (
            pd.DataFrame(while_running, columns=frame.columns).groupby(key, sort=True).mean()
        )

    keys = grouped.size().index.to_numpy()
    out = {
        "device_id": np.asarray(devices)[keys // len(buckets)],
        "window_start": pd.to_datetime(buckets[keys % len(buckets)], unit="s", utc=True),
    }
    out["window_end"] = out["window_start"] + pd.Timedelta(seconds=wsec)
    out["reading_count"] = grouped.size().to_numpy()
    present = n.sum(axis=1).to_numpy(dtype=float)
    out["sensor_completeness"] = np.minimum(1.0, present / (expected * len(sensors)))
    if running is not None:
        on = np.where(np.isnan(current), np.nan, running.astype(float))
        out["duty_cycle"] = pd.Series(on).groupby(key, sort=True).mean().to_numpy()
    else:
        out["duty_cycle"] = np.nan
    state = [c.name for c in readings.columns_with_role("state")]
    if state:
        door = clean[state[0]].astype("float64")
        out["door_open_fraction"] = door.groupby(key, sort=True).mean().to_numpy()
    else:
        out["door_open_fraction"] = np.nan
    mask = clean["quality_mask"].to_numpy(dtype=np.int64)
    combined = np.zeros(len(keys), dtype=np.int64)
    for bit in range(len(quality_flag_names())):
        combined |= pd.Series(mask & (1 << bit)).groupby(key, sort=True).max().to_numpy()
    out["quality_mask"] = combined
    out["quality_flags"] = _flag_names(pd.Series(combined)).to_numpy()

    for col in contract.columns_with_role("feature"):
        stat = col.extra["stat"]
        if col.extra.get("condition") == "running":
            stat = "running_mean" if stat == "mean" else None
        if stat not in stats:
            raise ValueError(f"the pandas reference has no statistic for {col.name!r}")
        out[col.name] = stats[stat][col.extra["sensor"]].to_numpy()
    return pd.DataFrame({c: out[c] for c in contract.column_names})
