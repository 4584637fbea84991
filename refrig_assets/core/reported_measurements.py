"""The measurements a fleet's landed data has reported: a record kept in the home's store.

Without ``REFRIG_SENSORS`` the fleet's measurements are the ones some ingested hour reported (a
value in at least one of its readings). Ingestion records them as it writes each hour, in
``<data_dir>/reported_measurements.json``: each measurement with the hour that first reported
it. The record only grows (a sensor the whole fleet stops reporting stays a sensor of the fleet,
so its loss is still flagged); it is changed under a lock and replaced atomically, so concurrent
runs merge what they saw. Every process (hourly, daily, training, serving) reads it from the
store; the copy a process keeps is dropped when the file is replaced.
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

# The record last read, by path: (inode, size, mtime_ns) and the measurements it names.
_read: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}


def record_path(data_dir: Path) -> Path:
    """Where the record of ``data_dir``'s fleet lives."""
    return Path(data_dir) / RECORD


def recorded_measurements(data_dir: Path) -> dict[str, str] | None:
    """Measurement -> the hour that first reported it; None while nothing is recorded."""
    path = record_path(data_dir)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    signature = (st.st_ino, st.st_size, st.st_mtime_ns)
    kept = _read.get(path)
    if kept is not None and kept[0] == signature:
        return kept[1]
    first = dict(json.loads(path.read_text())["first_reported"])
    _read[path] = (signature, first)
    return first


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
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        current = recorded_measurements(data_dir) or {}
        new = [n for n in names if n not in current]
        if not new:
            return current
        merged = {**current, **{n: partition_key for n in new}}
        final = record_path(data_dir)
        tmp = temporary_for(final)
        tmp.write_text(
            json.dumps(
                {"first_reported": merged, "updated": datetime.now(UTC).isoformat()},
                indent=1,
                sort_keys=True,
            )
        )
        durable_replace(tmp, final)
    return recorded_measurements(data_dir) or merged
