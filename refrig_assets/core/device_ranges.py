"""Device-id ranges of an hour's Parquet file, for computing a (device_id, ts)-ordered pass side
by side.

DuckDB streams a pass that follows the rows in order (``lag() OVER ()``) on one thread. Cut into
ranges of whole devices, the same pass runs once per range, each range in its own order, and a
``UNION ALL`` of the ranges keeps them in range order wherever the result is written in order.
The cuts come from the file's row-group statistics: no scan, and each range reads its own row
groups.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from refrig_assets.core.duck import sql_str


def threads(con: duckdb.DuckDBPyConnection) -> int:
    """How many threads DuckDB runs a query on for ``con``."""
    return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


def device_cuts(path: Path, ranges: int, *, nulls: bool = False) -> list[str]:
    """Device ids cutting a (device_id, ts)-sorted Parquet file into at most ``ranges``
    device-id ranges of about equal rows: the first device of a row group, where the running
    count of rows crosses a multiple of rows / ranges.

    Empty when the file has a single row group, when ``ranges`` < 2, or when the statistics
    do not show the file sorted by device and without NULL device ids (the caller then takes
    the file whole). With ``nulls`` a file with NULL device ids is cut too (for a caller
    that leaves those rows out of every range)."""
    meta = pq.ParquetFile(path).metadata
    if ranges < 2 or meta.num_row_groups < 2 or "device_id" not in meta.schema.names:
        return []
    column = meta.schema.names.index("device_id")
    firsts: list[str] = []
    rows: list[int] = []
    last: str | None = None
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
            return []
        if not nulls and (not stats.has_null_count or stats.null_count):
            return []
        if last is not None and stats.min < last:
            return []
        firsts.append(stats.min)
        rows.append(group.num_rows)
        last = stats.max
    total, seen = sum(rows), 0
    cuts: list[str] = []
    for first, n in zip(firsts, rows, strict=True):
        if seen * ranges >= total * (len(cuts) + 1) and (not cuts or first > cuts[-1]):
            cuts.append(first)
        seen += n
    return [c for c in cuts if c > firsts[0]][: ranges - 1]


def in_range_sql(cuts: list[str], k: int, *, null_in_first: bool = True) -> str:
    """SQL condition: a device id of range ``k`` of those ``cuts`` make. A NULL device id
    (never in a valid file) belongs to range 0, so every row is in exactly one range; with
    ``null_in_first=False`` to none, for a file :func:`device_cuts` found without any (a
    range with ``IS NULL`` in its condition would let DuckDB write device_id as nullable)."""
    parts = []
    if k > 0:
        parts.append(f"device_id >= {sql_str(cuts[k - 1])}")
    if k < len(cuts):
        parts.append(f"device_id < {sql_str(cuts[k])}")
    cond = " AND ".join(parts) or "TRUE"
    return f"(device_id IS NULL OR ({cond}))" if k == 0 and null_in_first else f"({cond})"
