"""The feature windows of a small request's clean rows with numpy, read from the same contract
definitions as the feature SQL.

:func:`refrig_assets.features.windows.feature_sql` turns the ``device_features`` contract (each
feature column's ``sensor``/``stat``/``condition`` or ``derived`` spec) and the
``sensor_readings`` contract (sensor ranges, ``running_above``, ``defrost_above``, state columns)
into one SQL statement. For a request of a few devices DuckDB spends most of that statement's
time planning it, not computing. :func:`window_features` interprets the same definitions over
the clean rows in memory: values outside the physical range are missing, missing values follow
SQL's rules (three-valued states, aggregates over present values), runs and streaks follow each
device's readings in time order across its windows. It raises :class:`ValueError` for a
definition it does not know, as ``feature_sql`` does. Tests hold it to the SQL over many random
and malformed requests; the service uses it up to ``features.in_memory_max_rows`` rows
(config/serving.yaml) and the SQL above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.fleet_sensors import fleet_sensor_columns, lacking_among
from refrig_assets.features.windows import (
    expected_readings_per_window,
    settle_minutes,
    window_minutes,
)
from refrig_assets.quality.rules import quality_flag_names
from refrig_assets.serving.memo import LastDerived

US = 1_000_000


@dataclass(frozen=True)
class _Tri:
    """A per-reading SQL boolean: ``value`` where ``known``, NULL elsewhere."""

    value: np.ndarray
    known: np.ndarray

    def true(self) -> np.ndarray:
        return self.value & self.known

    def negate(self) -> _Tri:
        return _Tri(~self.value, self.known)

    def both(self, other: _Tri) -> _Tri:
        false = (self.known & ~self.value) | (other.known & ~other.value)
        return _Tri(self.value & other.value & ~false, (self.known & other.known) | false)


class _Groups:
    """Rows sorted by (device, time) cut into (device, window) groups."""

    def __init__(self, devices: np.ndarray, bucket: np.ndarray):
        n = len(bucket)
        self.new_device = np.ones(n, bool)
        self.new_device[1:] = devices[1:] != devices[:-1]
        cut = self.new_device.copy()
        cut[1:] |= bucket[1:] != bucket[:-1]
        self.starts = np.flatnonzero(cut)
        self.of_row = np.cumsum(cut) - 1
        self.size = np.diff(np.append(self.starts, n))
        self.device_start = np.maximum.accumulate(np.where(self.new_device, np.arange(n), 0))

    def count(self, present: np.ndarray) -> np.ndarray:
        return np.add.reduceat(present.astype(np.int64), self.starts)

    def mean(self, x: np.ndarray, present: np.ndarray) -> np.ndarray:
        n = self.count(present)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                n > 0, np.add.reduceat(np.where(present, x, 0.0), self.starts) / n, np.nan
            )

    def std(self, x: np.ndarray, present: np.ndarray) -> np.ndarray:
        n = self.count(present)
        dev = np.where(present, x - self.mean(x, present)[self.of_row], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                n > 1, np.sqrt(np.add.reduceat(dev * dev, self.starts) / (n - 1)), np.nan
            )

    def extreme(self, x: np.ndarray, present: np.ndarray, largest: bool) -> np.ndarray:
        fill, ufunc = (-np.inf, np.maximum) if largest else (np.inf, np.minimum)
        found = ufunc.reduceat(np.where(present, x, fill), self.starts)
        return np.where(self.count(present) > 0, found, np.nan)

    def last(self, x: np.ndarray, present: np.ndarray) -> np.ndarray:
        idx = np.maximum.reduceat(np.where(present, np.arange(len(x)), -1), self.starts)
        return np.where(idx >= 0, x[np.maximum(idx, 0)], np.nan)

    def slope(self, y: np.ndarray, present: np.ndarray, t: np.ndarray) -> np.ndarray:
        n = self.count(present)
        ty = self.mean(t, present)[self.of_row]
        dt = np.where(present, t - ty, 0.0)
        dy = np.where(present, y - self.mean(y, present)[self.of_row], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = np.add.reduceat(dt * dy, self.starts)
            var = np.add.reduceat(dt * dt, self.starts)
            # regr_slope: NULL without a pair, covar_pop / var_pop (NaN for one pair) otherwise
            return np.where(n > 0, cov / var, np.nan)

    def count_if(self, condition: _Tri) -> np.ndarray:
        """SQL ``count_if``: the readings where ``condition`` holds, NULL (NaN) for a window
        where it is NULL on every reading."""
        hits = np.add.reduceat(condition.true().astype(np.int64), self.starts)
        return np.where(self.count(condition.known) > 0, hits, np.nan)

    def next_out(self, state: _Tri, t: np.ndarray) -> np.ndarray:
        """The time of the device's next reading out of ``state`` from each reading on (known
        and false), ``inf`` when none follows: the end of the state's stretch."""
        n = len(t)
        rows = np.where(state.known & ~state.value, np.arange(n), n)
        following = np.minimum.accumulate(rows[::-1])[::-1]
        device_end = np.append(np.flatnonzero(self.new_device)[1:], n)
        ends = device_end[np.cumsum(self.new_device) - 1]
        return np.where(following < ends, np.append(t, np.inf)[np.minimum(following, n)], np.inf)

    def previous(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The previous reading's value in the device's time order (``lag``) and where there
        is one."""
        shifted = np.empty_like(x)
        shifted[1:] = x[:-1]
        shifted[:1] = x[:1]
        return shifted, ~self.new_device


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A column as float64 with NaN for missing (the typed readings carry no NaN values)."""
    return np.asarray(
        table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )


def _bools(table: pa.Table, name: str) -> _Tri:
    column = table.column(name)
    known = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), bool)
    value = np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), bool)
    return _Tri(value & known, known)


def _flag_text(masks: np.ndarray) -> list[str]:
    """``flags_from_mask_sql``'s text: the set flags' names in bit order, '' for none."""
    names = quality_flag_names()
    cache: dict[int, str] = {}
    out = []
    for m in masks.tolist():
        text = cache.get(m)
        if text is None:
            text = ",".join(n for i, n in enumerate(names) if m & (1 << i))
            cache[m] = text
        out.append(text)
    return out


def window_features(
    clean: pa.Table,
    *,
    cadence_seconds: int | None = None,
    readings: Contract | None = None,
    features: Contract | None = None,
) -> dict[str, pa.Array]:
    """The ``device_features`` columns (contract order) of clean readings sorted by
    (device_id, ts) with one reading per key — :func:`refrig_assets.serving.small_batch.clean_rows`'
    form — as Arrow arrays, one row per (device, window) in that order: what
    ``feature_sql(source, cadence_seconds=...)`` gives for them."""
    columns: dict[str, pa.Array] = {}
    for name, data in _window_values(clean, cadence_seconds, readings, features).items():
        if name in ("window_start", "window_end"):
            columns[name] = pa.array(data, pa.timestamp("us", tz="UTC"))
        elif isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
            columns[name] = pa.array(data, from_pandas=data.dtype.kind == "f")
        else:
            columns[name] = pa.array(data, pa.string())
    return columns


# Arrow types the request's frame is built for directly, as the pandas dtype ``to_pandas``
# gives a column of that type without nulls (an integer column with nulls is float64 there).
_FRAME_TYPES = {
    pa.float64(): "float64",
    pa.int64(): "int64",
    pa.string(): "object",
    pa.timestamp("us", tz="UTC"): "time",
}


def _frame_plan(schema: pa.Schema) -> tuple[tuple[str, str], ...] | None:
    """(column, kind) of each field of ``schema`` (``None``: a type the direct form does not
    build)."""
    plan = tuple((f.name, _FRAME_TYPES.get(f.type, "")) for f in schema)
    return None if any(not kind for _, kind in plan) else plan


# The plan of the last schema seen: the service hands every request the same schema object.
_FRAME_PLAN: LastDerived[pa.Schema, tuple[tuple[str, str], ...] | None] = LastDerived(_frame_plan)


def window_frame(
    clean: pa.Table,
    schema: pa.Schema,
    *,
    cadence_seconds: int | None = None,
    readings: Contract | None = None,
    features: Contract | None = None,
) -> pd.DataFrame | None:
    """:func:`window_features` cast to ``schema`` (the feature SQL's types) as the pandas frame
    ``Table.to_pandas`` makes of it, window bounds in UTC — in batch files' form: rows in
    (device, window start) order, a fresh index — built from the numpy windows without the
    Arrow table, its cast and its conversion (most of a small request's feature time).
    ``None`` where a column's type or values are not ones this form reproduces exactly (a type
    other than double, bigint, text or UTC microseconds; a fraction cast to bigint): the caller
    then takes the Arrow path, which casts (or refuses) them itself."""
    plan = _FRAME_PLAN(schema)
    values = _window_values(clean, cadence_seconds, readings, features)
    if plan is None or list(values) != [name for name, _ in plan]:
        return None
    data: dict[str, Any] = {}
    for name, kind in plan:
        found = values[name]
        if kind == "time":
            data[name] = pd.DatetimeIndex(
                np.asarray(found, np.int64).view("M8[us]"), tz="UTC"
            ).array
        elif kind == "object":
            if isinstance(found, np.ndarray) and found.dtype != object:
                return None
            column = np.empty(len(found), object)
            column[:] = list(found)
            if not all(isinstance(v, str) for v in column):
                return None
            data[name] = column
        elif not isinstance(found, np.ndarray) or found.dtype.kind not in "iuf":
            return None
        elif kind == "float64":
            data[name] = found.astype(np.float64)
        elif found.dtype.kind in "iu":
            data[name] = found.astype(np.int64)
        else:  # a bigint computed as floats (a count that may be NULL): nulls make it float64
            missing = np.isnan(found)
            if not np.array_equal(found[~missing], np.trunc(found[~missing])):
                return None
            whole = found + 0.0  # a cast through bigint has no -0.0
            data[name] = whole if missing.any() else whole.astype(np.int64)
    # Clean rows come sorted by device and time (clean_rows' form), so the windows are in
    # order. The arrays are already what a frame holds (1-d numpy, a DatetimeArray), so the
    # frame is made without DataFrame(dict)'s per-column checks, which cost a request's few
    # windows more than computing them (pandas < 3; tests hold it equal to to_pandas).
    return pd.DataFrame._from_arrays(
        list(data.values()),
        columns=pd.Index(list(data)),
        index=pd.RangeIndex(len(next(iter(data.values()))) if data else 0),
        verify_integrity=False,
    )


def _window_values(
    clean: pa.Table,
    cadence_seconds: int | None,
    readings: Contract | None,
    features: Contract | None,
) -> dict[str, Any]:
    """The ``device_features`` columns of :func:`window_features` as numpy arrays (window
    bounds as epoch microseconds, device ids and flags as text)."""
    readings = readings or load_contract("sensor_readings")
    features = features or load_contract("device_features")
    wmin = window_minutes(None, cadence_seconds)
    expected = expected_readings_per_window(wmin, cadence_seconds)
    wsec = wmin * 60
    step_min = wmin / expected

    ts_us = np.asarray(clean.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False))
    epoch = ts_us / US
    bucket = (np.floor(epoch / wsec) * wsec).astype(np.int64)
    t_min = epoch / 60.0
    devices = np.asarray(clean.column("device_id").to_numpy(zero_copy_only=False))
    g = _Groups(devices, bucket)
    n = len(ts_us)

    values: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for c in readings.columns_with_role("sensor"):
        v = _floats(clean, c.name)
        ok = ~np.isnan(v)
        if c.range:
            ok &= (v >= c.range[0]) & (v <= c.range[1])
        values[c.name], present[c.name] = v, ok
    state_cols = [c.name for c in readings.columns_with_role("state")]

    running_cols = readings.running_sensors()
    if running_cols:
        rc = running_cols[0]
        running = _Tri(values[rc.name] > float(rc.extra["running_above"]), present[rc.name])
    else:
        running = _Tri(np.zeros(n, bool), np.ones(n, bool))
    states: dict[str, _Tri] = {}
    if running_cols:
        states = {"running": running, "idle": running.negate()}
    defrost_cols = [c for c in readings.columns_with_role("sensor") if "defrost_above" in c.extra]
    if defrost_cols and running_cols:
        dc = defrost_cols[0]
        above = _Tri(values[dc.name] > float(dc.extra["defrost_above"]), present[dc.name])
        states["defrost"] = running.negate().both(above)
    for name in state_cols:
        states[name] = _bools(clean, name)
    settled = _settled(features, running, states.get("defrost"), t_min, g, wsec)
    if running_cols:
        states["settled"] = settled

    def sensor(name: str, condition: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        ok = present[name]
        if condition == "running":
            ok = ok & settled.true()
        return values[name], ok

    stats: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "mean": g.mean,
        "std": g.std,
        "min": lambda x, ok: g.extreme(x, ok, False),
        "max": lambda x, ok: g.extreme(x, ok, True),
        "last": g.last,
        "slope": lambda x, ok: g.slope(x, ok, t_min),
    }
    out: dict[str, np.ndarray | list] = {}
    for col in features.columns_with_role("feature"):
        out[col.name] = stats[col.extra["stat"]](
            *sensor(col.extra["sensor"], col.extra.get("condition"))
        )

    groups = len(g.starts)
    nulls = np.full(groups, np.nan)
    sensors = [c.name for c in fleet_sensor_columns(readings)]
    out["reading_count"] = g.size.astype(np.int64)
    found = sum((g.count(present[s]) for s in sensors), np.zeros(groups, np.int64))
    out["sensor_completeness"] = np.minimum(
        1.0,
        found.astype(np.float64) / (expected * _kit_sizes(devices[g.starts], sensors, readings)),
    )
    out["duty_cycle"] = (
        g.mean(running.value.astype(np.float64), running.known) if running_cols else nulls
    )
    door = states.get(state_cols[0]) if state_cols else None
    out["door_open_fraction"] = g.mean(door.value.astype(np.float64), door.known) if door else nulls
    masks = np.bitwise_or.reduceat(
        np.asarray(clean.column("quality_mask").to_numpy(zero_copy_only=False), np.int64), g.starts
    )
    out["quality_mask"] = masks
    out.update(
        _derived(features, states, g, values, present, running, t_min, bucket, step_min, wmin)
    )

    first = bucket[g.starts]
    columns: dict[str, Any] = {}
    for col in features.columns:
        name = col.name
        if name == "device_id":
            columns[name] = devices[g.starts]
        elif name in ("window_start", "window_end"):
            start = first if name == "window_start" else first + wsec
            columns[name] = start * US
        elif name == "quality_flags":
            columns[name] = _flag_text(masks)
        elif name in out:
            columns[name] = np.asarray(out[name])
        else:
            raise ValueError(f"device_features column {name!r} has no feature definition")
    return columns


def _settled(
    features: Contract,
    running: _Tri,
    defrost: _Tri | None,
    t_min: np.ndarray,
    g: _Groups,
    window_seconds: int,
) -> _Tri:
    """The condition of the running-state statistics (the feature SQL's ``_settled_running``):
    running, and at least ``running_settle.after_start_seconds`` after the device's last
    reading not running (or unknown) and ``after_defrost_seconds`` after its last reading in
    defrost and, where ``after_defrost_max_seconds`` applies, after its first stop since that
    defrost or that cap, in its time order across the request's windows (none before:
    settled). A settle time shorter than the window does not apply."""
    times = settle_minutes(features, window_seconds)
    n = len(t_min)
    rows = np.arange(n)

    def last(state: np.ndarray) -> np.ndarray:
        """Each reading's device's last reading in ``state`` so far (-1: none)."""
        at = np.maximum.accumulate(np.where(state, rows, -1))
        return np.where(at >= g.device_start, at, -1)

    def since(at: np.ndarray) -> np.ndarray:
        return t_min - t_min[np.maximum(at, 0)]

    ok = np.ones(n, bool)
    if times.after_start > 0:
        idle = last(~running.true())  # NOT running OR running IS NULL
        ok &= (idle < 0) | (since(idle) >= times.after_start)
    if times.after_defrost > 0 and defrost is not None:
        d = last(defrost.true())
        after = since(d) >= times.after_defrost
        if times.defrost_at_most > 0:
            # a stop: not running (known) after a running reading of the same device
            stop = running.known & ~running.value
            stop[1:] &= running.true()[:-1]
            stop &= ~g.new_device
            s = last(stop)
            after &= ((s >= 0) & (s > d)) | (since(d) >= times.defrost_at_most)
        ok &= (d < 0) | after
    return running.both(_Tri(ok, np.ones(n, bool)))


def _derived(
    features: Contract,
    states: dict[str, _Tri],
    g: _Groups,
    values: dict[str, np.ndarray],
    present: dict[str, np.ndarray],
    running: _Tri,
    t_min: np.ndarray,
    bucket: np.ndarray,
    step_min: float,
    wmin: int,
) -> dict[str, np.ndarray]:
    """The contract's ``derived`` columns (``_derived_features`` of the feature SQL)."""
    groups = len(g.starts)
    out: dict[str, np.ndarray] = {}
    for col in features.columns:
        spec = col.extra.get("derived")
        if not spec:
            continue
        kind, state = spec["kind"], spec.get("state")
        if kind == "difference":
            a, b = spec["sensor"], spec["minus"]
            ok_a, ok_b = present[a], present[b]
            if spec.get("condition") == "running":
                run = states["settled"].true() if "settled" in states else np.zeros_like(ok_a)
                ok_a, ok_b = ok_a & run, ok_b & run
            out[col.name] = g.mean(values[a], ok_a) - g.mean(values[b], ok_b)
            continue
        if kind == "idle_max":
            if "idle" in states:
                out[col.name] = g.extreme(
                    values[spec["sensor"]], present[spec["sensor"]] & states["idle"].true(), True
                )
            else:
                out[col.name] = np.full(groups, np.nan)
            continue
        if state not in states:
            out[col.name] = np.full(groups, np.nan)
            continue
        s = states[state]
        on = s.true()
        prev_value, has_prev = g.previous(s.value)
        prev_known = g.previous(s.known)[0] & has_prev
        prev_on = prev_value & prev_known
        start = s.both(_Tri(~prev_value, prev_known))
        if float(spec.get("min_seconds") or 0) > step_min * 60:  # as the feature SQL
            least = (float(spec["min_seconds"]) - 0.001) / 60.0
            start = start.both(_Tri(g.next_out(s, t_min) - t_min >= least, np.ones_like(on)))
        starts = g.count_if(start)
        if kind == "starts":
            out[col.name] = starts
        elif kind == "starts_per_hour":
            out[col.name] = starts * (60.0 / wmin)
        elif kind == "minutes":
            out[col.name] = g.count_if(s) * step_min
        elif kind == "mean_run_minutes":
            prev_bucket, _ = g.previous(bucket)
            # p IS DISTINCT FROM 1 OR lag(bucket) <> bucket: never NULL
            new_run = ~prev_on | (has_prev & (prev_bucket != bucket))
            runs = g.count_if(s.both(_Tri(new_run, np.ones_like(new_run))))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[col.name] = np.where(runs > 0, g.count_if(s) * step_min / runs, np.nan)
        elif kind == "longest_streak_minutes":
            # the last reading of the device not in the state so far, else one step before
            # the device's first reading
            rows = np.arange(len(t_min))
            last_out = np.maximum.accumulate(np.where(~on, rows, -1))
            seen = last_out >= g.device_start
            anchor = np.where(
                seen, t_min[np.maximum(last_out, 0)], t_min[g.device_start] - step_min
            )
            found = g.extreme(t_min - anchor, on, True)
            out[col.name] = np.where(np.isnan(found), 0.0, found)
        else:
            raise ValueError(f"device_features column {col.name!r}: unknown derived kind {kind!r}")
    return out


def _kit_sizes(devices: np.ndarray, sensors: list[str], readings: Contract) -> np.ndarray:
    """How many of ``sensors`` each of ``devices`` has in its kit (at least one), as
    :func:`refrig_assets.core.fleet_sensors.kit_sizes_sql` counts it."""
    size = np.full(len(devices), len(sensors), np.int64)
    for name, lacking in lacking_among(devices, readings).items():
        if name in sensors:
            size -= lacking
    return np.maximum(size, 1)
