"""The measurements a fleet's landed data has reported: a record kept in the home's store.

Without ``REFRIG_SENSORS`` the fleet's measurements are the ones some ingested hour reported (a
value in at least one of its readings). Ingestion records them as it writes each hour, in
``<data_dir>/reported_measurements.json``: each measurement with the hour that first reported
it. The record only grows (a sensor the whole fleet stops reporting stays a sensor of the fleet,
so its loss is still flagged); it is changed under a lock and replaced atomically, so concurrent
runs merge what they saw. Every process (hourly, daily, training, serving) reads it from the
store; the copy a process keeps is dropped when the file is replaced.

Sensor kits also differ per device (a cohort without pressure transmitters, a few devices with a
vibration sensor). The record keeps, under ``by_device``, each device that has lacked a
measurement the fleet reports: the measurements it has reported so far. A device it does not
name has every measurement of the fleet; one it names lacks the others until it reports them.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrig_assets.core.storage import durable_replace, temporary_for

RECORD = "reported_measurements.json"
LOCK = ".reported_measurements.lock"

# The record last read, by path: (inode, size, mtime_ns) and what it holds.
_read: dict[Path, tuple[tuple[int, int, int], dict]] = {}


def record_path(data_dir: Path) -> Path:
    """Where the record of ``data_dir``'s fleet lives."""
    return Path(data_dir) / RECORD


def _record(data_dir: Path) -> dict | None:
    """The record's content (kept per process until the file is replaced); None without one."""
    path = record_path(data_dir)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    signature = (st.st_ino, st.st_size, st.st_mtime_ns)
    kept = _read.get(path)
    if kept is not None and kept[0] == signature:
        return kept[1]
    content = json.loads(path.read_text())
    content = {
        "first_reported": dict(content["first_reported"]),
        "by_device": {d: sorted(m) for d, m in (content.get("by_device") or {}).items()},
    }
    _read[path] = (signature, content)
    return content


def recorded_measurements(data_dir: Path) -> dict[str, str] | None:
    """Measurement -> the hour that first reported it; None while nothing is recorded."""
    content = _record(data_dir)
    return None if content is None else content["first_reported"]


def recorded_device_kits(data_dir: Path) -> dict[str, list[str]]:
    """Device -> the measurements it has reported, for the devices that have lacked one the
    fleet reports (every other device has them all); empty while nothing is recorded."""
    content = _record(data_dir)
    return {} if content is None else content["by_device"]


def columns_with_nulls(path: Path, names: Iterable[str]) -> list[str]:
    """The columns of ``names`` in the Parquet file ``path`` with a null in some row (or no
    null count in its footer): where some device of the file may lack a value. From the
    footer, without reading the rows."""
    meta = pq.ParquetFile(path).metadata
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}

    def holed(name: str) -> bool:
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index[name]).statistics
            if stats is None or not stats.has_null_count or stats.null_count > 0:
                return True
        return False

    return [n for n in names if n in index and holed(n)]


def reported_in_file(path: Path, names: Iterable[str]) -> list[str]:
    """The columns of ``names`` with a value (not null) in some row of the Parquet file ``path``.

    Read from the footer: a row group whose statistics count fewer nulls than rows has one. A
    column only read (that column, that row group) where a writer left no null count."""
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    wanted = list(names)
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    found: list[str] = []
    for name in wanted:
        i = index.get(name)
        if i is None:
            continue
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            stats = group.column(i).statistics
            if stats is not None and stats.has_null_count:
                has_value = stats.null_count < group.num_rows
            else:
                column = parquet.read_row_group(g, columns=[name]).column(0)
                has_value = pc.count(column).as_py() > 0
            if has_value:
                found.append(name)
                break
    return found


def record_reported(data_dir: Path, names: Iterable[str], partition_key: str) -> dict[str, str]:
    """Add ``names`` (reported by hour ``partition_key``) to the record; returns the record.

    Nothing is written when the record already names them all. Otherwise the record is read,
    merged and replaced under an exclusive lock, so two runs recording at once both count."""
    names = list(names)
    known = recorded_measurements(data_dir) or {}
    if all(n in known for n in names):
        return known

    def merge(content: dict) -> bool:
        new = [n for n in names if n not in content["first_reported"]]
        content["first_reported"].update({n: partition_key for n in new})
        return bool(new)

    return _update(data_dir, merge)["first_reported"]


def record_device_kits(data_dir: Path, per_device: dict[str, set[str]]) -> dict[str, list[str]]:
    """Add what each device of ``per_device`` reported (see
    :func:`refrig_assets.core.fleet_sensors.record_hour_measurements`) to the
    record's device kits: a device already named gains what it reported, one that lacks a
    measurement the fleet reports (the record's, after this hour's) joins them. Returns the
    kits; written under the lock only when they change."""

    def changes(content: dict) -> dict[str, list[str]]:
        fleet = set(content["first_reported"])
        kits = content["by_device"]
        out = {}
        for device, names in per_device.items():
            kit = kits.get(device)
            if kit is not None:
                if not names <= set(kit):
                    out[device] = sorted(set(kit) | names)
            elif fleet - names:
                out[device] = sorted(names)
        return out

    if not changes(_record(data_dir) or {"first_reported": {}, "by_device": {}}):
        return recorded_device_kits(data_dir)

    def merge(content: dict) -> bool:
        found = changes(content)
        content["by_device"].update(found)
        return bool(found)

    return _update(data_dir, merge)["by_device"]


def _update(data_dir: Path, merge) -> dict:
    """Apply ``merge`` (which changes the record's content in place and says whether it did) to
    the record under an exclusive lock, and replace the file when it did; returns the content."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        current = _record(data_dir) or {"first_reported": {}, "by_device": {}}
        content = {
            "first_reported": dict(current["first_reported"]),
            "by_device": dict(current["by_device"]),
        }
        if not merge(content):
            return current
        body = {"first_reported": content["first_reported"]}
        if content["by_device"]:
            body["by_device"] = content["by_device"]
        final = record_path(data_dir)
        tmp = temporary_for(final)
        tmp.write_text(
            json.dumps({**body, "updated": datetime.now(UTC).isoformat()}, indent=1, sort_keys=True)
        )
        durable_replace(tmp, final)
    return _record(data_dir) or content
