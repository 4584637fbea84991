"""The quality rules of a small, clean request in memory: the clean rows and their quality mask.

A score request is a few devices' hour of readings. :func:`refrig_assets.quality.rules.clean_hour`
judges it with some thirty small DuckDB statements, whose fixed cost (planning, binding, handing
rows between statements) is nearly all of a request's time. For a request the batch path would
keep whole — every row typed, keyed, in one hour, no duplicate reading, no NaN storm —
:func:`clean_rows` computes the same clean rows and quality masks with numpy over the typed rows:
the same rules, reading the same contract settings (``quality_rules`` of clean_readings,
ranges, ``steady_values``, ``operating_range`` and ``misunits`` of sensor_readings, the fleet's
sensors). Anything else it declines (``None``) and the caller takes the batch path, which names
the violations. Tests hold it equal to ``clean_hour`` on varied requests.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refrig_assets.core.contracts import ColumnSpec, Contract
from refrig_assets.core.fleet_sensors import fleet_sensor_columns, lacking_among
from refrig_assets.ingestion.landing.readers import landing_rules
from refrig_assets.quality.nan_storm import storm_files
from refrig_assets.quality.rules import _unit_checked, flag_bit
from refrig_assets.quality.steady import steady_mask
from refrig_assets.serving.memo import LastDerived

HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000


def _present(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.is_valid(table.column(name)).to_numpy(zero_copy_only=False), bool)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(
        table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)


def _nan_storm(typed: pa.Table, contract: Contract) -> bool:
    """Whether a request (source file) misses more sensor values than the landing rule allows
    (the batch path quarantines all its rows then)."""
    rule = landing_rules(contract).get("nan_storm")
    sensors = [c.name for c in fleet_sensor_columns(contract)]
    if not rule or not sensors:
        return False
    files = typed.column("source_file").to_numpy(zero_copy_only=False)
    absent = [~_present(typed, s) for s in sensors]
    counts = {}
    for f in np.unique(files):
        mine = files == f
        counts[f] = (int(mine.sum()), [int(a[mine].sum()) for a in absent])
    return bool(storm_files(counts, sensors, rule))
    files = typed.column("source_file").to_numpy(zero_copy_only=False)
    missing = np.zeros(typed.num_rows, np.int64)
    for s in sensors:
        missing += ~_present(typed, s)
    for f in np.unique(files):
        mine = files == f
        rows = int(mine.sum())
        share = float(missing[mine].sum()) / (rows * len(sensors))
        if rows >= int(rule["min_rows"]) and share > float(rule["max_missing_share"]):
            return True
    return False


def _stuck(
    values: np.ndarray,
    present: np.ndarray,
    same: np.ndarray,
    ts: np.ndarray,
    column: ColumnSpec,
    long_us,
) -> np.ndarray:
    """Rows of a stuck run of one sensor (rows sorted by device and time, one hour, no
    carried runs): a reading equal to the previous one of the device (steady values exempt)
    is marked; consecutive marked readings and the reading before them form a run, stuck when
    it spans ``long_us`` or more."""
    eq = np.zeros(len(values), bool)
    eq[1:] = same[1:] & present[1:] & present[:-1] & (values[1:] == values[:-1])
    eq &= ~steady_mask(column, values)
    stuck = np.zeros(len(values), bool)
    edges = np.diff(np.concatenate(([0], eq.astype(np.int8), [0])))
    for first, last in zip(
        np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True
    ):
        if ts[last] - ts[first - 1] >= long_us:
            stuck[first - 1 : last + 1] = True
    return stuck


# The registry's device ids as a set, built once per registry table: a membership test against
# a large fleet's ids per request would hash all of them each time.
_REGISTERED_IDS: LastDerived[pa.Table, frozenset] = LastDerived(
    lambda registered: frozenset(registered.column("device_id").to_pylist())
)


def clean_rows(
    typed: pa.Table, contract: Contract, registered: pa.Table, rules: dict
) -> pa.Table | None:
    """The clean rows of typed request readings (``file_select_sql``'s shape) as ``clean_hour``
    gives them — contract columns, ``quality_mask`` and ``source_file``, sorted by device and
    time — or ``None`` when the request is not one this form covers (a read error, a missing
    key, more than one hour, a duplicate reading, a NaN storm): the batch path then judges it.
    ``registered`` holds the registry's ``device_id``; ``rules`` the contract's
    ``quality_rules``."""
    n = typed.num_rows
    if n == 0 or typed.column("read_error").null_count != n:
        return None
    if typed.column("device_id").null_count or typed.column("ts").null_count:
        return None
    if _nan_storm(typed, contract):
        return None
    order = pc.sort_indices(typed, [("device_id", "ascending"), ("ts", "ascending")])
    rows = typed.take(order)
    ts = _micros(rows.column("ts"))
    if len(np.unique(ts // HOUR_US)) > 1:
        return None
    devices = rows.column("device_id").to_numpy(zero_copy_only=False)
    same = np.zeros(n, bool)
    same[1:] = devices[1:] == devices[:-1]
    if (same[1:] & (ts[1:] == ts[:-1])).any():
        return None  # duplicates: kept once and flagged by the batch path's rules
    starts = np.flatnonzero(~same)  # each device's first row
    device_of_row = np.cumsum(~same) - 1

    sensors = fleet_sensor_columns(contract)
    present = {c.name: _present(rows, c.name) for c in sensors}
    values = {c.name: _floats(rows, c.name) for c in sensors}
    dropout = np.zeros(n, bool)
    out_of_range = np.zeros(n, bool)
    stuck = np.zeros(n, bool)
    long_us = float(rules["stuck_sensor_minutes"]) * MINUTE_US
    lacks = lacking_among(devices, contract)  # a sensor a device's kit lacks: no dropout there
    for c in sensors:
        v, ok = values[c.name], present[c.name]
        lacking = lacks.get(c.name)
        dropout |= ~ok if lacking is None else ~ok & ~lacking
        if c.range:
            out_of_range |= ok & ((v < c.range[0]) | (v > c.range[1]))
        stuck |= _stuck(v, ok, same, ts, c, long_us)

    suspect = np.zeros(len(starts), bool)
    least = int(rules["unit_suspect_min_readings"])
    for c in _unit_checked(contract):
        ok = _present(rows, c.name)
        v = np.where(ok, _floats(rows, c.name), 0.0)
        count = np.add.reduceat(ok.astype(np.int64), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.add.reduceat(v, starts) / count
        lo, hi = (float(x) for x in c.extra["operating_range"])
        fits = np.zeros(len(starts), bool)
        for u in c.extra["misunits"]:
            scale, offset = float(u["scale"]), float(u.get("offset", 0.0))
            a, b = sorted((lo * scale + offset, hi * scale + offset))
            fits |= (mean >= a) & (mean <= b)
        suspect |= (count >= least) & ~((mean >= lo) & (mean <= hi)) & fits

    ids = _REGISTERED_IDS(registered)
    unregistered = np.fromiter((d not in ids for d in devices), bool, n)
    received = _micros(rows.column("received_at"))
    tolerance_us = float(rules["future_tolerance_minutes"]) * MINUTE_US
    late = np.asarray(rows.column("late_arrival").to_numpy(zero_copy_only=False), bool)
    flags = {
        "SENSOR_DROPOUT": dropout,
        "OUT_OF_RANGE": out_of_range,
        "STUCK_SENSOR": stuck,
        "LATE": late,
        "FUTURE_TIMESTAMP": ts > received + tolerance_us,
        "UNIT_SUSPECT": suspect[device_of_row],
        "UNREGISTERED_DEVICE": unregistered,
    }
    mask = np.zeros(n, np.int64)
    for name, hit in flags.items():
        mask |= np.where(hit, flag_bit(name), 0)
    clean = rows.select([*contract.column_names, "source_file"])
    return clean.append_column("quality_mask", pa.array(mask, pa.int64()))
