"""Which of the contract's measurements a fleet has.

Every measurement of ``contracts/sensor_readings.yaml`` is optional (``optional: true``). A fleet
may name the ones it has in ``REFRIG_SENSORS`` (comma-separated column names); unset, they are
the ones its landed data has reported so far (:mod:`refrig_assets.core.reported_measurements`,
recorded by ingestion hour by hour), and every one of them while nothing is recorded. Quality
flags, features' completeness, streaming rules, detector inputs and incidents use only these,
so a temperature-and-door fleet is not reported as a permanent dropout of six sensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from refrig_assets.core.contracts import ColumnSpec, Contract, ContractError
from refrig_assets.core.duck import connect, sql_str, utc_cursor
from refrig_assets.core.reported_measurements import (
    columns_with_nulls,
    record_device_kits,
    record_path,
    record_reported,
    recorded_device_kits,
    recorded_measurements,
    reported_in_file,
)
from refrig_assets.core.settings import get_settings

ENV = "REFRIG_SENSORS"
# Where the fleet's measurements came from (see :func:`measurements_source`).
FROM_SETTING, FROM_DATA, FROM_CONTRACT = ENV, "data", "contract"


def measurement_columns(contract: Contract) -> list[ColumnSpec]:
    """The contract's measurements: columns with a role (sensor or state)."""
    return [c for c in contract.columns if c.role in ("sensor", "state")]


def named_measurements(contract: Contract) -> list[str] | None:
    """The measurements ``REFRIG_SENSORS`` names (checked against the contract), in contract
    order; None when it is unset."""
    every = [c.name for c in measurement_columns(contract)]
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    named = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in named if n not in every]
    if unknown:
        raise ContractError(
            f"{ENV}: {', '.join(unknown)} not measurements of sensor_readings ({', '.join(every)})"
        )
    left_out = [n for n in _required(contract) if n not in named]
    if left_out:
        raise ContractError(f"{ENV}: {', '.join(left_out)} are required by sensor_readings")
    return [n for n in every if n in named]


def reported_measurements(contract: Contract) -> list[str] | None:
    """The measurements the fleet's landed data has reported (recorded in the home's store),
    with the contract's required ones, in contract order; None while nothing is recorded."""
    recorded = recorded_measurements(_data_dir(*_home_env()))
    if recorded is None:
        return None
    required = set(_required(contract))
    return [
        c.name for c in measurement_columns(contract) if c.name in recorded or c.name in required
    ]


def fleet_measurements(contract: Contract) -> list[str]:
    """Measurement columns the fleet has: ``REFRIG_SENSORS`` when set, else the ones its data
    has reported, else (nothing recorded yet) every one of the contract."""
    named = named_measurements(contract)
    if named is not None:
        return named
    reported = reported_measurements(contract)
    if reported is not None:
        return reported
    return [c.name for c in measurement_columns(contract)]


def measurements_source(contract: Contract) -> str:
    """Where :func:`fleet_measurements` takes them from: ``REFRIG_SENSORS``, ``data`` (what the
    ingested hours reported) or ``contract`` (nothing recorded yet: all of them)."""
    if named_measurements(contract) is not None:
        return FROM_SETTING
    return FROM_CONTRACT if reported_measurements(contract) is None else FROM_DATA


def record_hour_measurements(
    data_dir: Path,
    readings: Path,
    partition_key: str,
    contract: Contract,
    previous: Path | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[str]:
    """Record in ``data_dir`` the measurements hour ``partition_key``'s typed readings file
    ``readings`` reports (from its Parquet footer), and each device's kit where some device
    lacks one (see :func:`devices_lacking`); returns the hour's measurements.

    ``previous``, the typed readings of the hour before (if any), vouches for the devices this
    hour first finds lacking a measurement: one that reported it there lost it (a dropout),
    its kit has it. ``con``: a DuckDB connection to read the files on (a cursor of it; opening
    a database costs ~17 ms of CPU, an hour's fixed cost in a backfill); default, one of its own.
    """
    every = [c.name for c in measurement_columns(contract)]
    names = reported_in_file(readings, every)
    record_reported(data_dir, names, partition_key)
    holed = columns_with_nulls(readings, every)
    before = previous if previous is not None and previous.exists() else None
    record_kits(
        data_dir,
        holed,
        lambda lacking, named: _reported_by(readings, every, lacking, named, holed, con),
        None
        if before is None
        else lambda new: _reported_by(
            before, every, set(), new, columns_with_nulls(before, every), con
        ),
    )
    return names


# (measurements some device lacks, devices named) -> device -> the measurements it has
ReportedBy = Callable[[set[str], list[str]], dict[str, set[str]]]


def record_kits(
    data_dir: Path,
    holed: list[str],
    reported_by: ReportedBy,
    reported_before: Callable[[list[str]], dict[str, set[str]]] | None = None,
) -> None:
    """Record in ``data_dir`` each device's kit where some device lacks a measurement the fleet
    reports, whatever engine read the hour: ``holed``, the hour's measurements with a missing
    value in some row (none: every device of the hour reported every one); ``reported_by``, the
    hour's devices without a value of some measurement it is given and the devices it is
    named, with the measurements each has; ``reported_before``, the same of the hour before for
    the devices named, which vouches for a device first found lacking one (it reported it
    there: it lost it, a dropout; its kit has it)."""
    kits = recorded_device_kits(data_dir)
    if not kits and not holed:
        return
    fleet = set(recorded_measurements(data_dir) or {})
    per_device = reported_by(fleet, list(kits))
    new = [d for d, has in per_device.items() if d not in kits and fleet - has]
    if new and reported_before is not None:
        before = reported_before(new)
        for device in new:
            per_device[device] |= before.get(device, set())
    record_device_kits(data_dir, per_device)


def _reported_by(
    readings: Path,
    every: list[str],
    lacking: set[str],
    named: list[str],
    holed: list[str],
    con: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, set[str]]:
    """Device -> the measurements of ``every`` it has a value for in the typed readings file
    ``readings``, for the devices without a value of some measurement of ``lacking`` and those
    ``named``: one grouped pass, and only those devices come back (a fleet of 100K devices
    with a few dropouts returns a few).

    ``holed``: the file's columns with a null in some row (its footer, see
    :func:`columns_with_nulls`). Only those are read: every device has a value of any other
    column of the file (each of its rows has one), so no device lacks it."""
    columns = set(pq.read_schema(readings).names)
    present = [n for n in every if n in columns]
    if "device_id" not in columns:
        return {}
    read = [n for n in present if n in holed]
    having = [f'count("{n}") = 0' for n in read if n in lacking]
    if lacking - set(present):  # a measurement the file has no column for: every device lacks it
        having = ["TRUE"]
    if named:
        # a join with the ids (a membership tree of 30K literal ids failed at the 2 GB limit)
        having.append(f"device_id IN (SELECT device_id FROM {_NAMED})")
    if not having:
        return {}
    counts = "".join(f', count("{n}") > 0' for n in read)
    sql = (
        f"SELECT CAST(device_id AS VARCHAR){counts} FROM read_parquet({sql_str(str(readings))}) "
        f"WHERE device_id IS NOT NULL GROUP BY device_id HAVING {' OR '.join(having)}"
    )
    with closing(connect() if con is None else utc_cursor(con)) as cursor:
        if named:
            cursor.register(_NAMED, pa.table({"device_id": pa.array(named, pa.string())}))
        rows = cursor.execute(sql).fetchall()
    whole = {n for n in present if n not in holed}
    return {
        row[0]: whole | {n for n, has in zip(read, row[1:], strict=True) if has} for row in rows
    }


# The devices named to :func:`_reported_by`, as a relation of its cursor.
_NAMED = "kit_devices_named"


def devices_lacking(contract: Contract) -> dict[str, list[str]]:
    """Fleet sensor -> the devices that have never reported it while the fleet has (their kit
    lacks it: a missing value there is no dropout), from the home's record; a sensor every
    device has reported is left out."""
    return {name: list(ids) for name, ids in _kits(contract).lacking.items()}  # a copy each call


def lacking_among(devices: np.ndarray, contract: Contract) -> dict[str, np.ndarray]:
    """Fleet sensor -> which of ``devices`` (an array of ids) lack it (:func:`devices_lacking`),
    for the sensors some device lacks: a set lookup per distinct id of ``devices``, where
    ``np.isin`` against the lacking ids sorted them all each time (30,000 ids: ~78 ms a call,
    once per sensor of a serving request)."""
    sets = _kits(contract).sets
    if not sets:
        return {}
    distinct, inverse = np.unique(np.asarray(devices, dtype=object), return_inverse=True)
    return {
        name: np.fromiter((d in ids for d in distinct), bool, len(distinct))[inverse.reshape(-1)]
        for name, ids in sets.items()
    }


def lacks_column(sensor: str) -> str:
    """The column of :func:`kit_table` that says a device's kit lacks ``sensor``."""
    return f"lacks_{sensor}"


def kit_table(contract: Contract) -> pa.Table:
    """:func:`devices_lacking` as a table to join with (no rows when no device lacks one):
    ``device_id`` of each device lacking some fleet sensor and, per sensor some device lacks,
    a boolean :func:`lacks_column`. SQL joins it on the device instead of testing each row's
    device against literal ids, so its cost follows the rows, not the devices named."""
    return _kits(contract).table


# What separates the ids of a list of devices in one SQL string (a range of hours names its
# devices "<hour>" + chr(31) + "<id>": no id holds it).
ID_SEPARATOR = 31
# SQL of one row per item of the string {s} split at {sep} (DuckDB's; Spark's is explode(split())).
SPLIT_ROWS = "unnest(string_split({s}, {sep}))"


def kit_sizes_sql(
    sensors: list[str], contract: Contract, split_rows: str = SPLIT_ROWS
) -> str | None:
    """SQL of a relation (``kit_device``, ``kit_size``): each device whose kit lacks some of
    ``sensors`` (:func:`devices_lacking`) with how many of them it has (at least one, so no
    completeness divides by zero); None when every device has them all. A device it does not
    name has all of them.

    The ids of each kit size are one string literal split into rows (``split_rows``, the
    engine's SQL for it): a query joins it at the cost of a small hash table, where a
    membership test of the literal ids cost each row (10,000 ids ran out of 2 GB)."""
    kits = _kits(contract)
    key = (tuple(sensors), split_rows)
    if key not in kits.sizes:  # laid out once per version of the record (30K ids: ~13 ms)
        kits.sizes[key] = _kit_sizes(kits.lacking, sensors, split_rows)
    return kits.sizes[key]


@dataclass
class _Kits:
    """The devices whose kit lacks a fleet sensor, in the forms callers ask for, worked out
    once per version of the record (a fleet with 30K devices lacking two sensors: ~28 ms for
    the lists, asked several times an hour): each form is made on first use."""

    lacking: dict[str, list[str]]  # fleet sensor -> the devices lacking it, sorted
    sizes: dict[tuple, str | None] = field(default_factory=dict)  # kit_sizes_sql's answers

    @cached_property
    def sets(self) -> dict[str, frozenset[str]]:
        """:attr:`lacking` as sets, to look devices up in."""
        return {name: frozenset(ids) for name, ids in self.lacking.items()}

    @cached_property
    def table(self) -> pa.Table:
        """:attr:`lacking` as :func:`kit_table`'s table."""
        devices = sorted(set().union(*self.lacking.values())) if self.lacking else []
        columns = {"device_id": pa.array(devices, pa.string())}
        for name, held in self.sets.items():
            columns[lacks_column(name)] = pa.array([d in held for d in devices], pa.bool_())
        return pa.table(columns)


# The record's last versions worked out (keyed by :func:`_record_key`), the oldest dropped first.
_KITS: dict[tuple, _Kits] = {}
_KITS_KEPT = 8


def _kits(contract: Contract) -> _Kits:
    key = _record_key(contract)
    if key not in _KITS:
        kits = recorded_device_kits(_data_dir(*_home_env()))
        lacking: dict[str, list[str]] = {}
        for name in fleet_measurements(contract) if kits else []:
            ids = sorted(d for d, kit in kits.items() if name not in kit)
            if ids:
                lacking[name] = ids
        if len(_KITS) >= _KITS_KEPT:
            _KITS.pop(next(iter(_KITS)))
        _KITS[key] = _Kits(lacking)
    return _KITS[key]


def _record_key(contract: Contract) -> tuple:
    """What the kits depend on: the home, the record's version, the setting and the contract."""
    data_dir = _data_dir(*_home_env())
    return (
        str(data_dir),
        _signature(record_path(data_dir)),
        os.environ.get(ENV, ""),
        tuple((c.name, c.role, bool(c.extra.get("optional"))) for c in contract.columns),
    )


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _kit_sizes(lacking: dict[str, list[str]], sensors: list[str], split_rows: str) -> str | None:
    lacked: dict[str, int] = {}
    for name in sensors:
        for device in lacking.get(name, []):
            lacked[device] = lacked.get(device, 0) + 1
    if not lacked:
        return None
    by_size: dict[int, list[str]] = {}
    for device, n in sorted(lacked.items()):
        by_size.setdefault(max(1, len(sensors) - n), []).append(device)
    sep = f"chr({ID_SEPARATOR})"
    parts = [
        f"SELECT {split_rows.format(s=sql_str(chr(ID_SEPARATOR).join(ids)), sep=sep)} "
        f"AS kit_device, {size} AS kit_size"
        for size, ids in sorted(by_size.items())
    ]
    return " UNION ALL ".join(parts)


def kit_size_sql(sensors: list[str], contract: Contract, device: str = "device_id") -> str:
    """SQL of how many of ``sensors`` the row's device (column ``device``) has in its kit: all
    of them, less each one it lacks (:func:`kit_sizes_sql`, looked up by a subquery that DuckDB
    runs as a join); the plain count when no device lacks one. What a device's completeness
    is measured against."""
    sizes = kit_sizes_sql(sensors, contract)
    if sizes is None:
        return str(len(sensors))
    found = f"(SELECT max(kit_size) FROM ({sizes}) WHERE kit_device = {device})"
    return f"coalesce({found}, {len(sensors)})"


def record_stamp() -> tuple[int, int] | None:
    """The fleet-sensor record's (modification time, size), None while there is none: what a
    statement written from the fleet's sensors and kits is cached against."""
    try:
        st = record_path(_data_dir(*_home_env())).stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def _required(contract: Contract) -> list[str]:
    return [c.name for c in measurement_columns(contract) if not c.extra.get("optional")]


def _home_env() -> tuple[str | None, str | None]:
    return os.environ.get("REFRIG_HOME"), os.environ.get("REFRIG_DATA_DIR")


@lru_cache(maxsize=8)
def _data_dir(home: str | None, data_dir: str | None) -> Path:
    """The store's directory for these environment values (resolved once per process)."""
    return get_settings().data_dir


def fleet_sensor_columns(contract: Contract, role: str = "sensor") -> list[ColumnSpec]:
    """``contract.columns_with_role(role)`` limited to the fleet's measurements."""
    have = set(fleet_measurements(contract))
    return [c for c in contract.columns_with_role(role) if c.name in have]


def absent_measurements(contract: Contract) -> list[str]:
    """Measurements of the contract the fleet does not have."""
    have = set(fleet_measurements(contract))
    return [c.name for c in measurement_columns(contract) if c.name not in have]


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def usable_features(
    names: list[str],
    features: Contract,
    readings: Contract | None = None,
    *,
    running_state: bool = True,
) -> list[str]:
    """The feature columns of ``names`` a fleet can compute, in order: a feature of an absent
    measurement is left out, and without the running-state sensor (the one with
    ``running_above``) a running-conditioned statistic becomes the plain one
    (``<sensor>_running_mean`` -> ``<sensor>_mean``) and running-state features are left out.
    ``running_state=False``: the data has no running state (its running-state sensor never
    crossed ``running_above``), mapped as if that sensor were absent."""
    from refrig_assets.core.contracts import load_contract

    readings = readings or load_contract("sensor_readings")
    absent = set(absent_measurements(readings))
    if not absent and running_state:
        return list(names)
    running = [c.name for c in readings.running_sensors()]
    no_running = bool(running) and (running[0] in absent or not running_state)
    out: list[str] = []
    for name in names:
        try:
            col = features.column(name)
        except KeyError:
            out.append(name)
            continue
        extra = col.extra
        derived = extra.get("derived") or {}
        if no_running and extra.get("condition") == "running":
            plain = f"{extra.get('sensor')}_{extra.get('stat')}"
            if extra.get("sensor") in absent or plain not in features.column_names:
                continue
            name, extra, derived = plain, features.column(plain).extra, {}
        needs_running = (
            name == "duty_cycle"
            or "running" in name
            or (isinstance(derived, dict) and derived.get("state") in ("running", "defrost"))
        )
        if no_running and needs_running:
            continue
        if _strings(extra) & absent or any(m in name for m in absent):
            continue
        if name not in out:
            out.append(name)
    return out
