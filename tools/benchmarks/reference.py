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
    clean: pd.DataFrame,
    *,
    window_min: int | None = None,
    cadence_seconds: int | None = None,
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

    out.update(
        _derived_features(
            clean,
            values,
            key,
            bucket,
            epoch / 60.0,
            device_codes,
            wmin,
            wmin / expected,
            contract,
        )
    )
    for col in contract.columns_with_role("feature"):
        stat = col.extra["stat"]
        if col.extra.get("condition") == "running":
            stat = "running_mean" if stat == "mean" else None
        if stat not in stats:
            raise ValueError(f"the pandas reference has no statistic for {col.name!r}")
        out[col.name] = stats[stat][col.extra["sensor"]].to_numpy()
    return pd.DataFrame({c: out[c] for c in contract.column_names})


def _kleene(values: np.ndarray) -> pd.arrays.BooleanArray:
    """A float array of 1/0/NaN as a nullable boolean (SQL's three-valued logic)."""
    return pd.array(np.where(np.isnan(values), None, values == 1.0), dtype="boolean")


def _as_float(state: pd.arrays.BooleanArray) -> np.ndarray:
    return state.to_numpy(dtype=float, na_value=np.nan)


def _derived_features(
    clean: pd.DataFrame,
    values: dict[str, np.ndarray],
    key: np.ndarray,
    bucket: np.ndarray,
    t_min: np.ndarray,
    device_codes: np.ndarray,
    wmin: int,
    step_min: float,
    contract,
) -> dict[str, np.ndarray]:
    """The contract's ``derived`` (cause) columns: states per reading, the previous reading's
    state within the device (rows are in time order per device), then per-window counts."""
    readings = load_contract("sensor_readings")
    sensors = readings.columns_with_role("sensor")
    states: dict[str, pd.arrays.BooleanArray] = {}
    running_spec = [c for c in sensors if "running_above" in c.extra]
    if running_spec:
        rc = running_spec[0]
        states["running"] = _kleene(
            np.where(
                np.isnan(values[rc.name]),
                np.nan,
                values[rc.name] > float(rc.extra["running_above"]),
            )
        )
        defrost_spec = [c for c in sensors if "defrost_above" in c.extra]
        if defrost_spec:
            dc = defrost_spec[0]
            warm = _kleene(
                np.where(
                    np.isnan(values[dc.name]),
                    np.nan,
                    values[dc.name] > float(dc.extra["defrost_above"]),
                )
            )
            states["defrost"] = ~states["running"] & warm
        states["idle"] = ~states["running"]
    for c in readings.columns_with_role("state"):
        states[c.name] = pd.array(clean[c.name].to_numpy(), dtype="boolean")

    first = np.ones(len(key), dtype=bool)
    first[1:] = device_codes[1:] != device_codes[:-1]

    def previous(a: np.ndarray) -> np.ndarray:
        prev = np.empty(len(a), dtype=float)
        prev[:1] = np.nan
        prev[1:] = a[:-1]
        prev[first] = np.nan
        return prev

    by_window = pd.Series(np.zeros(len(key))).groupby(key, sort=True)
    keys = by_window.size().index

    def per_window(a: np.ndarray, how: str) -> np.ndarray:
        grouped = pd.Series(a).groupby(key, sort=True)
        return getattr(grouped, how)().reindex(keys).to_numpy()

    def count_if(true: np.ndarray, null: np.ndarray) -> np.ndarray:
        """SQL's count_if per window: NULL where the condition is NULL on every row."""
        counts = per_window(true.astype(np.int64), "sum").astype(float)
        all_null = per_window(null.astype(np.int64), "min") == 1
        return np.where(all_null, np.nan, counts)

    out: dict[str, np.ndarray] = {}
    for col in contract.columns:
        spec = col.extra.get("derived")
        if not spec:
            continue
        kind, state = spec["kind"], spec.get("state")
        if kind == "difference":
            a, b = values[spec["sensor"]], values[spec["minus"]]
            if spec.get("condition") == "running":
                on = (
                    states["running"].to_numpy(dtype=bool, na_value=False)
                    if "running" in states
                    else np.zeros(len(a), bool)
                )
                a, b = np.where(on, a, np.nan), np.where(on, b, np.nan)
            out[col.name] = per_window(a, "mean") - per_window(b, "mean")
            continue
        if kind == "idle_max":
            if "idle" not in states:
                out[col.name] = np.full(len(keys), np.nan)
                continue
            idle = states["idle"].to_numpy(dtype=bool, na_value=False)
            out[col.name] = per_window(np.where(idle, values[spec["sensor"]], np.nan), "max")
            continue
        if state not in states:
            out[col.name] = np.full(len(keys), np.nan)
            continue
        s = _as_float(states[state])
        p = previous(s)
        on = s == 1.0
        unknown = np.isnan(s)
        # s = 1 AND p = 0 is NULL unless one side is known to make it false
        start_null = ~((s == 0.0) | (p == 1.0)) & (unknown | np.isnan(p))
        starts = count_if(on & (p == 0.0), start_null)
        if kind == "starts":
            out[col.name] = starts
        elif kind == "starts_per_hour":
            out[col.name] = starts * (60.0 / wmin)
        elif kind == "minutes":
            out[col.name] = count_if(on, unknown) * step_min
        elif kind == "mean_run_minutes":
            prev_bucket = previous(bucket.astype(float))
            new_run = on & ((p != 1.0) | (~np.isnan(prev_bucket) & (prev_bucket != bucket)))
            runs = count_if(new_run, unknown)
            minutes = count_if(on, unknown) * step_min
            out[col.name] = np.where(runs > 0, minutes / np.where(runs > 0, runs, 1.0), np.nan)
        elif kind == "longest_streak_minutes":
            is_on = states[state].to_numpy(dtype=bool, na_value=False)
            off_at = pd.Series(np.where(is_on, np.nan, t_min))
            last_off = off_at.groupby(device_codes).cummax().groupby(device_codes).ffill()
            t0 = pd.Series(t_min).groupby(device_codes).transform("first").to_numpy()
            since = np.where(np.isnan(last_off.to_numpy()), t0 - step_min, last_off.to_numpy())
            streak = np.where(on, t_min - since, np.nan)
            longest = per_window(streak, "max")
            out[col.name] = np.where(np.isnan(longest), 0.0, longest)
        else:
            raise ValueError(f"the pandas reference has no derived kind {kind!r}")
    return out
