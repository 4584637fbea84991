"""Feature windows: per device and window, per-sensor statistics plus duty cycle and completeness.

The feature logic is one SQL definition generated from the contracts. It runs on DuckDB (the
embedded engine) and, through :data:`DIALECTS`, on Spark SQL — the same text with two function
names swapped, so the engines cannot drift apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.fleet_sensors import SPLIT_ROWS, fleet_sensor_columns, kit_sizes_sql
from refrig_assets.quality.rules import flags_from_mask_sql


@dataclass(frozen=True)
class Dialect:
    """The few expressions that differ between SQL engines."""

    name: str
    epoch_seconds: str  # template with {ts}
    from_epoch_seconds: str  # template with {s}
    last_value: str  # the latest non-null {s} of a window, ordered by the reading's {t}
    count_if: str  # readings where {c} holds: NULL when {c} is NULL in every reading (DuckDB's)
    split_rows: str  # one row per item of the string {s} split at the string {sep}


DIALECTS = {
    # DuckDB's max_by skips NULL values itself (it returns the non-NULL value of the latest
    # row that has one), so it needs no per-reading CASE: one projection less per sensor.
    "duckdb": Dialect(
        "duckdb",
        "epoch(CAST({ts} AS TIMESTAMPTZ))",
        "to_timestamp({s})",
        "max_by({s}, {t})",
        "count_if({c})",
        SPLIT_ROWS,
    ),
    # Spark's max_by returns the latest row's value even when it is NULL, and its count_if
    # gives 0 where DuckDB's gives NULL (a window whose state no reading tells).
    "spark": Dialect(
        "spark",
        "CAST(unix_micros({ts}) AS DOUBLE) / 1000000",
        "timestamp_seconds({s})",
        "max_by({s}, CASE WHEN {s} IS NOT NULL THEN {t} END)",
        "CASE WHEN count({c}) > 0 THEN count_if({c}) END",
        "explode(split({s}, {sep}))",
    ),
}
# Spark reads a literal 0.0 as DECIMAL (its results would come back as decimals): a typed literal
# keeps every engine computing in DOUBLE.
ZERO = "CAST(0 AS DOUBLE)"
WINDOW_ENV = "REFRIG_WINDOW_SECONDS"
HOUR_DIVISORS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)  # window lengths in minutes


def fleet_cadence_seconds(cadence_seconds: int | None = None) -> int:
    """The fleet's cadence: given, else ``REFRIG_CADENCE_SECONDS``, else the contract's."""
    from refrig_assets.core.settings import cadence_override

    return int(
        cadence_seconds
        or cadence_override()
        or load_contract("sensor_readings").settings["expected_cadence_seconds"]
    )


def window_minutes(override: int | None = None, cadence_seconds: int | None = None) -> int:
    """Window length in minutes (it divides the hour): ``override``, else
    ``REFRIG_WINDOW_SECONDS``, else the device_features contract's window for the fleet's
    cadence (``window_by_cadence``, ``window_minutes``), lengthened to hold at least
    ``min_readings_per_window`` readings."""
    settings = load_contract("device_features").settings
    if override:
        minutes = int(override)
    elif os.environ.get(WINDOW_ENV):
        seconds = int(os.environ[WINDOW_ENV])
        if seconds % 60:
            raise ValueError(f"{WINDOW_ENV}={seconds} must be whole minutes")
        minutes = seconds // 60
    else:
        cadence = fleet_cadence_seconds(cadence_seconds)
        bands = settings.get("window_by_cadence") or []
        band = next((b for b in bands if cadence <= b["max_cadence_seconds"]), None)
        minutes = int(band["window_seconds"]) // 60 if band else int(settings["window_minutes"])
        least = float(settings.get("min_readings_per_window", 1)) * cadence / 60
        minutes = next((m for m in HOUR_DIVISORS if m >= max(minutes, least)), 60)
    if minutes <= 0 or 60 % minutes:
        raise ValueError(f"window_minutes={minutes} must divide 60")
    return minutes


def expected_readings_per_window(window_min: int, cadence_seconds: int | None = None) -> float:
    """How many readings a healthy device sends per window at the fleet's cadence."""
    return window_min * 60 / fleet_cadence_seconds(cadence_seconds)


def feature_sql(
    source: str,
    *,
    window_min: int | None = None,
    cadence_seconds: int | None = None,
    dialect: str = "duckdb",
    readings: Contract | None = None,
    features: Contract | None = None,
    ordered: bool = False,
    carry: str | None = None,
) -> str:
    """SQL computing device_features from a clean_readings relation named ``source``.

    Values outside the contract's physical range are ignored (they stay flagged in the clean
    readings). ``slope`` is a least-squares slope per minute; ``last`` is the latest non-null
    value. Output columns follow the device_features contract order.

    ``ordered`` says ``source`` yields its rows in (device_id, ts) order, one per key, as
    clean_readings files are written. On DuckDB the run and streak features then follow the
    rows as they come (previous-row comparisons with a same-device guard) instead of a window
    partitioned and re-sorted by device; a row out of that order fails the query with
    :data:`ORDER_ERROR` in its message. Spark keeps the partitioned window (it promises no row
    order). The results are the same either way.

    ``carry`` names a relation of :func:`settle_carry_sql` over the readings just before
    ``source`` (the previous hour's): a device's running state then settles after a start or
    defrost of that hour as after one of its own, instead of counting as settled at its first
    reading.
    """
    d = DIALECTS[dialect]
    readings = readings or load_contract("sensor_readings")
    features = features or load_contract("device_features")
    wmin = window_minutes(window_min, cadence_seconds)
    expected = expected_readings_per_window(wmin, cadence_seconds)
    wsec = wmin * 60
    epoch = d.epoch_seconds.format(ts="ts")
    bucket = f"CAST(floor({epoch} / {wsec}) * {wsec} AS BIGINT)"

    valid = _valid_sensors(readings)
    state_cols = [c.name for c in readings.columns_with_role("state")]

    running = _running(readings)
    settle, settle_cols, settle_passes = _settled_running(
        readings, features, running, wsec, carried=carry is not None
    )
    carried = _settle_anchors(readings, features, running, wsec) if carry else {}
    # Where a settle applies, its condition is computed once per reading (``_settled``), not
    # in every running statistic's aggregate.
    settled = "_settled" if settle_cols else settle
    aggs: dict[str, str] = {}
    for col in features.columns_with_role("feature"):
        s, stat = col.extra["sensor"], col.extra["stat"]
        if col.extra.get("condition") == "running":
            s = f"CASE WHEN {settled} THEN {s} END"
        aggs[col.name] = {
            "mean": f"avg({s})",
            "std": f"stddev_samp({s})",
            "min": f"min({s})",
            "max": f"max({s})",
            "last": d.last_value.format(s=s, t="t_min"),
            # regr_slope uses only the pairs where both values are non-null (both engines)
            "slope": f"regr_slope({s}, t_min)",
        }[stat]
    sensors = [c.name for c in fleet_sensor_columns(readings)]  # a fleet may lack some
    present = " + ".join(f"count({s})" for s in sensors)
    running_cols = readings.running_sensors()
    aggs["reading_count"] = "count(*)"
    # over the sensors of the device's own kit (a cohort without pressure transmitters), joined
    # with the readings below (every one of a device has the same); a device not named has all
    kit_sizes = kit_sizes_sql(sensors, readings, d.split_rows)
    kit = f"coalesce(min(_kit_size), {len(sensors)})" if kit_sizes else str(len(sensors))
    aggs["sensor_completeness"] = f"least(1.0, CAST({present} AS DOUBLE) / ({expected} * {kit}))"
    # Shares of the readings with a known state: the count of those in it over the count of
    # known ones (the average of a 1/0 per reading, exactly: both are whole numbers), without a
    # per-reading column; count(current) is the completeness's own aggregate.
    if running_cols:
        rc = running_cols[0]
        aggs["duty_cycle"] = _share(f"{rc.name} > {rc.extra['running_above']}", rc.name)
    else:
        aggs["duty_cycle"] = "CAST(NULL AS DOUBLE)"
    door = state_cols[0] if state_cols else None
    aggs["door_open_fraction"] = _share(door, door) if door else "CAST(NULL AS DOUBLE)"
    aggs["quality_mask"] = "CAST(bit_or(quality_mask) AS BIGINT)"
    # A fleet without a running_above current cannot tell runs: those features stay NULL.
    states = {"running": running, "idle": f"NOT ({running})"} if running_cols else {}
    defrost_cols = [c for c in readings.columns_with_role("sensor") if "defrost_above" in c.extra]
    if defrost_cols and running_cols:
        dc = defrost_cols[0]
        states["defrost"] = f"(NOT ({running}) AND {dc.name} > {dc.extra['defrost_above']})"
    for name in state_cols:
        states[name] = name
    if running_cols:
        states["settled"] = settle
    in_order = ordered and dialect == "duckdb"
    derived, window_cols, passes = _derived_features(
        features, states, cadence_seconds, expected, wmin, in_order, d.count_if
    )
    aggs.update(derived)
    window_cols += settle_cols
    passes.lags.update(settle_passes.lags)
    passes.guarded.update(settle_passes.guarded)
    passes.carried.update(settle_passes.carried)

    select = []
    for col in features.columns:
        name = col.name
        if name == "device_id":
            select.append("device_id")
        elif name == "window_start":
            select.append(f"{d.from_epoch_seconds.format(s='bucket')} AS window_start")
        elif name == "window_end":
            select.append(f"{d.from_epoch_seconds.format(s=f'bucket + {wsec}')} AS window_end")
        elif name == "quality_flags":
            select.append(f"{flags_from_mask_sql('bit_or(quality_mask)')} AS quality_flags")
        elif name in aggs:
            select.append(f"{aggs[name]} AS {name}")
        else:
            raise ValueError(f"device_features column {name!r} has no feature definition")
    valid_cols = ", ".join(valid + state_cols)
    inner = (
        f"SELECT device_id, {bucket} AS bucket, ({epoch}) / 60.0 AS t_min, quality_mask, "
        f"{valid_cols}{', ts' if in_order else ''} FROM {source}"
    )
    if window_cols and in_order:
        inner = _in_order_passes(inner, passes)
    elif window_cols:
        if settle_passes.lags:
            # The previous reading's running state, for the stops the settle ends at (a
            # window column cannot take another's lag in the same pass).
            lags = ", ".join(f"lag({e}) OVER w AS {n}" for n, e in settle_passes.lags.items())
            inner = (
                f"SELECT *, {lags} FROM ({inner}) r0 "
                "WINDOW w AS (PARTITION BY device_id ORDER BY t_min)"
            )
        # One window pass over each device's readings in time order serves every run, start
        # and streak feature (they share the window, so the engine sorts once).
        inner = (
            f"SELECT *, {', '.join(window_cols)} FROM ({inner}) r "
            # The default frame (start of the partition to the current row) is what the
            # running max and first value need; Spark refuses an explicit frame on lag.
            "WINDOW w AS (PARTITION BY device_id ORDER BY t_min)"
        )
    if carried:
        # Joined after the passes that follow the rows' order (a join need not keep it).
        cols = ", ".join(f"k.{name} AS _cy{name}" for name in carried)
        inner = (
            f"SELECT p.*, {cols} FROM ({inner}) p LEFT JOIN {carry} k ON p.device_id = k.device_id"
        )
    if settle_cols:
        inner = f"SELECT *, ({settle}) AS _settled FROM ({inner}) q"
    if kit_sizes:
        # the id after a unit separator: a range of hours names its devices "<hour>\x1f<id>"
        device = "substr(p.device_id, instr(p.device_id, chr(31)) + 1)"
        inner = (
            f"SELECT p.*, s.kit_size AS _kit_size FROM ({inner}) p "
            f"LEFT JOIN ({kit_sizes}) s ON s.kit_device = {device}"
        )
    return (
        f"SELECT {', '.join(select)} FROM ({inner}) v "
        "GROUP BY device_id, bucket ORDER BY device_id, bucket"
    )


def _share(condition: str, column: str) -> str:
    """Share of the window's readings with ``column`` known where ``condition`` holds (NULL
    when none is known)."""
    return f"CAST(count_if({condition}) AS DOUBLE) / nullif(count({column}), 0)"


ORDER_ERROR = "clean readings out of (device_id, ts) order"
# An anchor older than any reading: a device already running (or never in defrost) at its first
# reading of the partition counts as settled, as a state on at the first reading is no start.
_LONG_AGO = "CAST(-1e18 AS DOUBLE)"
# A state's end not known in the partition (the in-order form's marker; the window form's NULL).
_NO_END = "CAST(1e18 AS DOUBLE)"


def _running(readings: Contract) -> str:
    """The compressor-running condition (its current above ``running_above``); FALSE for a
    fleet without such a sensor."""
    cols = readings.running_sensors()
    return f"{cols[0].name} > {cols[0].extra['running_above']}" if cols else "FALSE"


def _valid_sensors(readings: Contract) -> list[str]:
    """The sensor columns with values outside the contract's physical range set to NULL."""
    valid = []
    for c in readings.columns_with_role("sensor"):
        if c.range:
            lo, hi = c.range
            valid.append(f"CASE WHEN {c.name} BETWEEN {lo} AND {hi} THEN {c.name} END AS {c.name}")
        else:
            valid.append(c.name)
    return valid


@dataclass(frozen=True)
class SettleMinutes:
    """The running state's settle times (``running_settle`` of the device_features contract) at
    a window length, in minutes; 0 where one does not apply. ``after_defrost`` is the least
    settle after a defrost and ``defrost_at_most`` its cap (0: the settle ends at
    ``after_defrost``, without waiting for the pull-down's end)."""

    after_start: float
    after_defrost: float
    defrost_at_most: float


def settle_minutes(features: Contract, window_seconds: int) -> SettleMinutes:
    """The contract's settle times at a window of ``window_seconds``: a settle time shorter
    than the window does not apply (a cap is only read where ``after_defrost_seconds``
    applies, and is never below it)."""
    spec = features.settings.get("running_settle") or {}

    def minutes(key: str) -> float:
        return float(spec.get(key, 0) or 0) / 60.0

    start = minutes("after_start_seconds")
    defrost = minutes("after_defrost_seconds")
    start = start if start * 60 >= window_seconds else 0.0
    defrost = defrost if defrost * 60 >= window_seconds else 0.0
    at_most = minutes("after_defrost_max_seconds") if defrost else 0.0
    return SettleMinutes(start, defrost, at_most if at_most > defrost else 0.0)


def _settle_anchors(
    readings: Contract, features: Contract, running: str, window_seconds: int
) -> dict[str, str]:
    """The readings the running state settles after (column name -> SQL condition, ``_st_stop``
    on the previous reading's running flag ``_st_prun``): an idle compressor (its next run
    settles ``running_settle.after_start_seconds`` after), a defrost (``after_defrost_seconds``)
    and, where the settle after a defrost lasts until the pull-down ends, a stop (the first
    reading not running after a running one: the thermostat satisfied). Empty where no settle
    time applies at the window."""
    if running == "FALSE":
        return {}
    times = settle_minutes(features, window_seconds)
    anchors: dict[str, str] = {}
    if times.after_start > 0:
        anchors["_st_idle"] = f"NOT ({running}) OR ({running}) IS NULL"
    defrost_cols = [c for c in readings.columns_with_role("sensor") if "defrost_above" in c.extra]
    if times.after_defrost > 0 and defrost_cols:
        dc = defrost_cols[0]
        anchors["_st_defrost"] = f"NOT ({running}) AND {dc.name} > {dc.extra['defrost_above']}"
        if times.defrost_at_most > 0:
            anchors["_st_stop"] = f"{_PREV_RUNNING} = 1 AND NOT ({running})"
    return anchors


# The previous reading's running flag (1, else 0; NULL at a device's first reading).
_PREV_RUNNING = "_st_prun"


def _running_flag(running: str) -> str:
    return f"CASE WHEN {running} THEN 1 ELSE 0 END"


def _latest(a: str, b: str) -> str:
    """The later of two anchor times, either of which may be NULL."""
    return f"CASE WHEN {b} IS NULL OR {a} >= {b} THEN {a} ELSE {b} END"


def _settle_condition(running: str, times: SettleMinutes, at: dict[str, str]) -> str:
    """The settled running state from the anchors' last times ``at`` (column name -> SQL)."""
    conditions = [f"({running})"]
    if "_st_idle" in at:
        idle = at["_st_idle"]
        conditions.append(f"({idle} IS NULL OR t_min - {idle} >= {times.after_start})")
    if "_st_defrost" in at:
        d = at["_st_defrost"]
        after = f"t_min - {d} >= {times.after_defrost}"
        if "_st_stop" in at:
            # The pull-down ends at the compressor's first stop after the defrost (its own
            # restart then settles as any start), or at the cap for a device that never stops.
            stop = at["_st_stop"]
            after += (
                f" AND (({stop} IS NOT NULL AND {stop} > {d}) "
                f"OR t_min - {d} >= {times.defrost_at_most})"
            )
        conditions.append(f"({d} IS NULL OR ({after}))")
    return " AND ".join(conditions)


def _settled_running(
    readings: Contract,
    features: Contract,
    running: str,
    window_seconds: int,
    carried: bool = False,
) -> tuple[str, list[str], _InOrder]:
    """The condition of the running-state statistics (``condition: running``): the compressor
    runs and has run for at least ``running_settle.after_start_seconds``, and the last reading in
    defrost is at least ``running_settle.after_defrost_seconds`` old and, where
    ``after_defrost_max_seconds`` is set, the compressor has stopped once since (the pull-down
    is over) or that cap has passed (device_features contract). The pull-down of a coil warmed
    by an off-cycle, a defrost or a power cut is not the running state; a fleet read every
    second sees it window by window. A settle time shorter than the window is not applied: such
    a window holds the transient as a minority of its readings, as the windows the detectors
    trained on did. ``carried``: the anchors of the readings before (``_cy<name>`` columns of
    :func:`settle_carry_sql`) count as the device's own. Also the per-reading columns the
    condition needs, for the partitioned window and for the in-order form (``lags``: the
    previous reading's, a pass of their own in the window form)."""
    passes = _InOrder({}, {}, {}, {})
    window = []
    anchors = _settle_anchors(readings, features, running, window_seconds)
    for name, state in anchors.items():
        if name == "_st_stop":
            passes.lags[_PREV_RUNNING] = _running_flag(running)
            guarded = state.replace(_PREV_RUNNING, f"CASE WHEN _same THEN {_PREV_RUNNING} END")
        else:
            guarded = state
        # The last reading in the state so far (window form: within the partition's device).
        window.append(f"max(CASE WHEN {state} THEN t_min END) OVER w AS {name}")
        passes.guarded[f"{name}_b"] = (
            f"CASE WHEN {guarded} THEN t_min WHEN NOT _same THEN {_LONG_AGO} END AS {name}_b"
        )
        passes.carried[name] = f"{name}_b"
    at = {n: (_latest(n, f"_cy{n}") if carried else n) for n in anchors}
    times = settle_minutes(features, window_seconds)
    return _settle_condition(running, times, at), window, passes


def settle_carry_sql(
    source: str,
    *,
    window_min: int | None = None,
    cadence_seconds: int | None = None,
    dialect: str = "duckdb",
    readings: Contract | None = None,
    features: Contract | None = None,
) -> str | None:
    """SQL of the ``carry`` of :func:`feature_sql` from the clean readings ``source`` that come
    just before its own (the previous hour's): per device, the time (minutes since the epoch,
    as ``t_min``) of its last reading in each state the running state settles after. None when
    no settle time applies at the fleet's window length (nothing to carry)."""
    d = DIALECTS[dialect]
    readings = readings or load_contract("sensor_readings")
    features = features or load_contract("device_features")
    running = _running(readings)
    wsec = window_minutes(window_min, cadence_seconds) * 60
    anchors = _settle_anchors(readings, features, running, wsec)
    if not anchors:
        return None
    cols = ", ".join(
        f"max(CASE WHEN {state} THEN t_min END) AS {n}" for n, state in anchors.items()
    )
    inner = (
        f"SELECT device_id, ({d.epoch_seconds.format(ts='ts')}) / 60.0 AS t_min, "
        f"{', '.join(_valid_sensors(readings))} FROM {source}"
    )
    if "_st_stop" in anchors:
        inner = (
            f"SELECT *, lag({_running_flag(running)}) OVER (PARTITION BY device_id ORDER BY t_min)"
            f" AS {_PREV_RUNNING} FROM ({inner}) r0"
        )
    return f"SELECT device_id, {cols} FROM ({inner}) r GROUP BY device_id"


@dataclass
class _InOrder:
    """Per-reading columns of the in-order form, by pass: the state flags, the previous row's
    values (``lag() OVER ()``, no partition, so no sort) and the next row's (``leads``), what
    they give once guarded by ``_same`` (same device as the previous row), the streak anchors
    carried forward and the states' ends looked up ahead (``ahead``)."""

    flags: dict[str, str]
    lags: dict[str, str]
    guarded: dict[str, str]
    carried: dict[str, str]
    leads: dict[str, str] = field(default_factory=dict)
    ahead: dict[str, str] = field(default_factory=dict)


def _in_order_passes(inner: str, cols: _InOrder) -> str:
    """Wrap ``inner`` (rows in (device_id, ts) order) in the passes of the in-order form."""
    lags = {"_ld": "device_id", "_lts": "ts", **cols.lags}
    shifted = [f"lag({e}) OVER () AS {n}" for n, e in lags.items()]
    shifted += [f"lead({e}) OVER () AS {n}" for n, e in cols.leads.items()]
    out = f"SELECT *, {', '.join(cols.flags.values())} FROM ({inner}) r0"
    out = f"SELECT *, {', '.join(shifted)} FROM ({out}) r1"
    # A row that does not follow its predecessor in (device_id, ts) order stops the query:
    # every comparison with the previous row below depends on that order.
    same = (
        "CASE WHEN device_id = _ld AND ts > _lts THEN TRUE "
        "WHEN _ld IS NULL OR device_id > _ld THEN FALSE "
        f"ELSE error('{ORDER_ERROR}') END AS _same"
    )
    out = f"SELECT *, {same} FROM ({out}) r2"
    out = f"SELECT *, {', '.join(cols.guarded.values())} FROM ({out}) r3"
    if cols.carried or cols.ahead:
        carried = [
            f"last_value({e} IGNORE NULLS) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
            f" AS {n}"
            for n, e in cols.carried.items()
        ]
        carried += [
            f"first_value({e} IGNORE NULLS) OVER (ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)"
            f" AS {n}"
            for n, e in cols.ahead.items()
        ]
        out = f"SELECT *, {', '.join(carried)} FROM ({out}) r4"
    return out


def _derived_features(
    features: Contract,
    states: dict[str, str],
    cadence_seconds: int | None,
    expected: float,
    wmin: int,
    in_order: bool = False,
    count_if_sql: str = DIALECTS["duckdb"].count_if,
) -> tuple[dict[str, str], list[str], _InOrder]:
    """Aggregates of the contract's ``derived`` columns and the per-reading window columns
    they need (for the in-order form, its columns by pass). A state the readings cannot tell
    (no running_above, no door column) gives NULL."""
    step_min = wmin / expected  # minutes per reading at the fleet's cadence
    aggs: dict[str, str] = {}
    window: dict[str, str] = {}
    passes = _InOrder({}, {}, {}, {})

    def count_if(condition: str) -> str:
        return count_if_sql.format(c=condition)

    def state_cols(state: str) -> str:
        """The state's per-reading flag (1, 0 or NULL)."""
        expr = states[state]
        flag = f"CASE WHEN {expr} THEN 1 WHEN ({expr}) IS NULL THEN NULL ELSE 0 END"
        window[f"_s_{state}"] = f"{flag} AS _s_{state}"
        passes.flags[state] = f"{flag} AS _s_{state}"
        return f"_s_{state}"

    def previous(state: str) -> str:
        """The previous reading's flag of the state (same device), only for the features
        that compare with it: every per-reading column costs each reading of the hour."""
        flag = window[f"_s_{state}"].removesuffix(f" AS _s_{state}")
        window[f"_p_{state}"] = f"lag({flag}) OVER w AS _p_{state}"
        passes.lags[f"_l_{state}"] = f"_s_{state}"
        passes.guarded[state] = f"CASE WHEN _same THEN _l_{state} END AS _p_{state}"
        return f"_p_{state}"

    def state_end(state: str) -> str:
        """The time of the device's next reading out of the state (this one's when it is out),
        NULL when none follows in the partition: the end of the state's stretch."""
        expr = states[state]
        window[f"_e_{state}"] = (
            f"min(CASE WHEN NOT ({expr}) THEN t_min END) OVER (PARTITION BY device_id "
            f"ORDER BY t_min ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS _e_{state}"
        )
        # In row order: the next row out of the state, or the device's last row's NULL marker
        # (its end is not known), looked up ahead, never across devices.
        passes.leads["_nd"] = "device_id"
        passes.guarded[f"_f_{state}"] = (
            f"CASE WHEN _s_{state} = 0 THEN t_min "
            f"WHEN _nd IS DISTINCT FROM device_id THEN {_NO_END} END AS _f_{state}"
        )
        passes.ahead[f"_e_{state}"] = f"_f_{state}"
        return f"_e_{state}"

    for col in features.columns:
        spec = col.extra.get("derived")
        if not spec:
            continue
        kind, state = spec["kind"], spec.get("state")
        if kind == "difference":
            a, b = spec["sensor"], spec["minus"]
            if spec.get("condition") == "running":
                run = states.get("settled", "FALSE")
                a, b = (f"CASE WHEN {run} THEN {x} END" for x in (a, b))
            aggs[col.name] = f"avg({a}) - avg({b})"
            continue
        if kind == "idle_max":
            aggs[col.name] = (
                f"max(CASE WHEN {states['idle']} THEN {spec['sensor']} END)"
                if "idle" in states
                else "CAST(NULL AS DOUBLE)"
            )
            continue
        if state not in states:
            aggs[col.name] = "CAST(NULL AS DOUBLE)"
            continue
        s = state_cols(state)
        if kind in ("starts", "starts_per_hour"):
            start = f"{s} = 1 AND {previous(state)} = 0"
            if float(spec.get("min_seconds") or 0) > step_min * 60:
                # A stretch ending sooner is noise (an idle current blip over running_above):
                # no start. Measured to the next reading out of the state; one that has not
                # ended in the partition counts. A millisecond's slack keeps the engines'
                # floating-point times from splitting a stretch of exactly min_seconds. At a
                # cadence of min_seconds or slower a stretch seen at all spans a reading
                # interval: every start counts, without the look-ahead's pass.
                end = state_end(state)
                least = (float(spec["min_seconds"]) - 0.001) / 60.0
                start += f" AND ({end} IS NULL OR {end} - t_min >= {least})"
            starts = count_if(start)
            aggs[col.name] = (
                f"CAST({starts} AS BIGINT)"
                if kind == "starts"
                else f"CAST({starts} AS DOUBLE) * {60.0 / wmin}"
            )
        elif kind == "minutes":
            aggs[col.name] = f"CAST({count_if(f'{s} = 1')} AS DOUBLE) * {step_min}"
        elif kind == "mean_run_minutes":
            window["_pb"] = "lag(bucket) OVER w AS _pb"
            passes.lags["_lb"] = "bucket"
            passes.guarded["_pb"] = "CASE WHEN _same THEN _lb END AS _pb"
            p = previous(state)
            runs = count_if(f"{s} = 1 AND ({p} IS DISTINCT FROM 1 OR _pb <> bucket)")
            aggs[col.name] = (
                f"CAST({count_if(f'{s} = 1')} AS DOUBLE) * {step_min} / "
                f"CASE WHEN {runs} > 0 THEN {runs} END"
            )
        elif kind == "longest_streak_minutes":
            window[f"_c_{state}"] = (
                f"max(CASE WHEN {states[state]} THEN NULL ELSE t_min END) OVER w AS _c_{state}"
            )
            window["_t0"] = "first_value(t_min) OVER w AS _t0"
            start = f"coalesce(_c_{state}, _t0 - {step_min})"
            if in_order:
                # The streak's anchor is the last reading out of the state, or a reading
                # before the device's first when that one is already in it: carried forward
                # in row order, it never crosses devices (every device's first row sets it).
                passes.guarded[f"_b_{state}"] = (
                    f"CASE WHEN {s} IS DISTINCT FROM 1 THEN t_min "
                    f"WHEN NOT _same THEN t_min - {step_min} END AS _b_{state}"
                )
                passes.carried[f"_a_{state}"] = f"_b_{state}"
                start = f"_a_{state}"
            aggs[col.name] = f"coalesce(max(CASE WHEN {s} = 1 THEN t_min - {start} END), {ZERO})"
        else:
            raise ValueError(f"device_features column {col.name!r}: unknown derived kind {kind!r}")
    return aggs, list(window.values()), passes
