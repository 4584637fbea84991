"""Device shards for the hourly steps after the features: scores, alerts and incidents.

Like the quality step (:mod:`refrig_assets.quality.shards`), these steps look at one device at a
time once their fleet-wide context is known (a detector's trained state, the alert dedup state,
the incidents' baselines), so they can read, process and write the hour one range of device ids
at a time with the same result, and their memory does not grow with the fleet.

The shard count follows the same rule as the quality step: the hour's readings (the sum of
``reading_count`` over its feature windows) times ``reading_bytes``, divided by the memory budget
of ``config/performance.yaml``: one shard for 100K devices at a one-minute cadence, three for
300K, nine for 1M. Ranges are cut where the running count of readings (in device-id order)
crosses a multiple of readings / shards, as the quality step cuts them. The first range is open
below and the last open above, so every device id, including one absent from the hour the cuts
were taken from, falls in exactly one range.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.memory import MemoryBudget, load_memory_budget

FEATURES = "device_features"


@dataclass(frozen=True)
class DeviceRange:
    """Device ids ``low <= id < high`` (None: unbounded on that side)."""

    low: str | None = None
    high: str | None = None

    def filters(self) -> list[tuple[str, str, str]]:
        """The range as pyarrow read filter terms (a conjunction; empty for the whole fleet)."""
        out = []
        if self.low is not None:
            out.append(("device_id", ">=", self.low))
        if self.high is not None:
            out.append(("device_id", "<", self.high))
        return out

    def mask(self, device_ids: pd.Series) -> np.ndarray:
        """Which of ``device_ids`` fall in the range."""
        ids = device_ids.astype(str)
        keep = np.ones(len(ids), dtype=bool)
        if self.low is not None:
            keep &= (ids >= self.low).to_numpy()
        if self.high is not None:
            keep &= (ids < self.high).to_numpy()
        return keep

    def read_filters(self) -> list[tuple[str, str, str]] | None:
        """:meth:`filters` as pyarrow's ``filters=`` argument (None for the whole fleet)."""
        return self.filters() or None


WHOLE_FLEET = [DeviceRange()]


def rows_per_range(device_ids: pd.Series, ranges: list[DeviceRange]) -> list[np.ndarray]:
    """Per range, the positions of ``device_ids`` in it (in their order), as
    ``np.flatnonzero(range.mask(device_ids))`` gives them: for ids in sorted order (a stored
    registry) found by binary search, so splitting a fleet costs one pass, not one per range."""
    ids = device_ids.astype(str).to_numpy()
    if len(ranges) <= 1 or not pd.Index(ids).is_monotonic_increasing:
        return [np.flatnonzero(r.mask(device_ids)) for r in ranges]
    out = []
    for r in ranges:
        lo = 0 if r.low is None else int(np.searchsorted(ids, r.low, side="left"))
        hi = len(ids) if r.high is None else int(np.searchsorted(ids, r.high, side="left"))
        out.append(np.arange(lo, max(lo, hi)))
    return out


def registry_parts(registry: pd.DataFrame, ranges: list[DeviceRange]) -> list[pd.DataFrame]:
    """The registry's rows of each device range (the registry itself for the whole fleet), so
    a shard's devices are looked up among its own registry rows, not the whole fleet's."""
    if len(ranges) == 1 and ranges[0] == DeviceRange():
        return [registry]
    return [registry.iloc[rows] for rows in rows_per_range(registry["device_id"], ranges)]


def device_ranges(device_ids: pa.Array, weights: pa.Array | None, shards: int) -> list[DeviceRange]:
    """``shards`` contiguous device-id ranges holding about equal shares of ``weights`` (one per
    row of ``device_ids``; None counts rows). Fewer ranges when there are fewer devices."""
    if shards <= 1 or len(device_ids) == 0:
        return list(WHOLE_FLEET)
    table = pa.table(
        {
            "device_id": pc.cast(device_ids, pa.string()),
            "w": pa.array(np.ones(len(device_ids)))
            if weights is None
            else pc.fill_null(pc.cast(weights, pa.float64()), 0.0),
        }
    ).filter(pc.is_valid(pc.field("device_id")))
    if table.num_rows == 0:
        return list(WHOLE_FLEET)
    ids, w = _per_device(table)
    if w.sum() <= 0:
        w = np.ones(len(ids))
    before = np.cumsum(w) - w
    group = np.floor(before * shards / w.sum()).astype(np.int64)
    starts = np.flatnonzero(np.diff(group, prepend=-1))[1:]  # first device of shards 1..n-1
    bounds = [None, *ids.take(pa.array(starts, pa.int64())).to_pylist(), None]
    return [DeviceRange(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _per_device(table: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """The devices of (device_id, w) rows in id order and each one's summed ``w``.

    Rows already in device order (a feature partition) are summed per run of equal ids:
    hashing and sorting 1M device ids cost ~0.8 CPU-s, the comparisons of neighbours a tenth.
    The weights are whole reading counts (or ones), so either way of summing gives the same
    sums."""
    ids = table["device_id"].combine_chunks()
    if not pc.any(pc.less(ids[1:], ids[:-1])).as_py():
        changes = pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.concatenate([[True], changes]))
        return ids.take(pa.array(starts, pa.int64())), np.add.reduceat(
            table["w"].to_numpy(), starts
        )
    per_device = table.group_by("device_id").aggregate([("w", "sum")]).sort_by("device_id")
    return per_device["device_id"].combine_chunks(), per_device["w_sum"].to_numpy()


def hour_shards(
    store: ParquetStore,
    partition_keys: Iterable[str],
    shards: int | None = None,
    budget: MemoryBudget | None = None,
) -> list[DeviceRange]:
    """Device ranges for processing the feature hours ``partition_keys`` one range at a time.

    ``shards`` defaults to what the memory budget needs for the largest of the hours (its
    readings, as the quality step counts them); the cuts come from the first hour present.
    Hours without features give the whole fleet as one range.

    The steps of an hour (each detector's scores, alerts, incidents, device status) all ask
    for the same hour's ranges: they are computed once per version of the feature file (its
    path, inode, modification time and size) and process, not once per step (at 1M devices a
    read of 4M windows' device ids and a grouping of 1M devices, ~1.3 CPU-s each time)."""
    paths = store.existing_paths(FEATURES, partition_keys)
    if not paths:
        return list(WHOLE_FLEET)
    if shards is None:
        budget = budget or load_memory_budget()
        readings = max(feature_file_readings(p) for p in paths)
        shards = budget.shards_for(readings)
    if shards <= 1:
        return list(WHOLE_FLEET)
    return list(_file_ranges(_version(paths[0]), shards))


# A feature file as it is now: (path, inode, modification time in ns, size). A rewritten
# partition is renamed into place, so any rewrite gives another version.
FileVersion = tuple[str, int, int, int]


def _version(path: Path) -> FileVersion:
    st = os.stat(path)
    return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _file_ranges(file: FileVersion, shards: int) -> tuple[DeviceRange, ...]:
    """:func:`device_ranges` of one feature file's windows (weighted by reading_count)."""
    path = file[0]
    names = set(pq.ParquetFile(path).schema_arrow.names)
    columns = ["device_id", *(["reading_count"] if "reading_count" in names else [])]
    first = pq.read_table(path, columns=columns)
    weights = first["reading_count"] if "reading_count" in names else None
    return tuple(device_ranges(first["device_id"], weights, shards))


def feature_file_readings(path: Path) -> int:
    """Readings behind one feature hour's file (its windows when it has no reading_count),
    read once per version of the file and process."""
    return _readings(_version(path))


# A history backfill scores every hour before the hour chain alerts them (in one process):
# each hour's count, a few hundred bytes, is kept until the chain asks for it again.
@lru_cache(maxsize=8192)
def _readings(file: FileVersion) -> int:
    """Readings behind one feature hour (its windows when it has no reading_count)."""
    path = file[0]
    parquet = pq.ParquetFile(path)
    if "reading_count" not in parquet.schema_arrow.names:
        return parquet.metadata.num_rows
    total = pc.sum(pq.read_table(path, columns=["reading_count"])["reading_count"]).as_py()
    return int(total or 0)


def stream_query(con, sql: str, out, batch_rows: int, required: Collection[str] = ()) -> None:
    """Append a DuckDB query's rows to a partition writer (:meth:`ParquetStore.writer`) in
    record batches of ``batch_rows`` (never whole in memory); a query without rows still
    fixes the schema. The first query to write fixes the schema with the ``required`` columns
    not nullable: columns the query never leaves NULL, which DuckDB writing the whole file
    marks so but its Arrow batches do not (a NULL in one fails the write).

    Each batch is encoded and written on a second thread while DuckDB computes the next one:
    DuckDB stops computing once its small result buffer is full, so written on the reading
    thread the Parquet encoding (one thread) and the query would take turns instead of
    running side by side. At most two batches are held: the one being written and the one
    read; they are written in the query's order."""
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    if out.schema is None and required:
        out.schema = pa.schema([f.with_nullable(f.name not in required) for f in reader.schema])
    wrote = False
    # Leaving the block waits for a write in flight, also when the query fails.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as writer:
        pending: Future | None = None
        for batch in reader:
            if not batch.num_rows:
                continue
            table = pa.Table.from_batches([batch])
            if pending is not None:
                pending.result()  # in order, and a failed write stops the query
            pending = writer.submit(out.write, table)
            wrote = True
        if pending is not None:
            pending.result()
    if not wrote and out.schema is None:
        out.schema = reader.schema
