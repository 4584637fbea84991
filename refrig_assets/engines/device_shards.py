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

from collections.abc import Iterable
from dataclasses import dataclass

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
    per_device = table.group_by("device_id").aggregate([("w", "sum")]).sort_by("device_id")
    ids = per_device["device_id"].to_numpy(zero_copy_only=False)
    w = per_device["w_sum"].to_numpy()
    if w.sum() <= 0:
        w = np.ones(len(ids))
    before = np.cumsum(w) - w
    group = np.floor(before * shards / w.sum()).astype(np.int64)
    firsts = ids[np.flatnonzero(np.diff(group, prepend=-1))][1:]  # first id of shards 1..n-1
    bounds = [None, *[str(b) for b in firsts], None]
    return [DeviceRange(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def hour_shards(
    store: ParquetStore,
    partition_keys: Iterable[str],
    shards: int | None = None,
    budget: MemoryBudget | None = None,
) -> list[DeviceRange]:
    """Device ranges for processing the feature hours ``partition_keys`` one range at a time.

    ``shards`` defaults to what the memory budget needs for the largest of the hours (its
    readings, as the quality step counts them); the cuts come from the first hour present.
    Hours without features give the whole fleet as one range."""
    paths = store.existing_paths(FEATURES, partition_keys)
    if not paths:
        return list(WHOLE_FLEET)
    if shards is None:
        budget = budget or load_memory_budget()
        readings = max(_readings(p) for p in paths)
        shards = budget.shards_for(readings)
    if shards <= 1:
        return list(WHOLE_FLEET)
    names = set(pq.ParquetFile(paths[0]).schema_arrow.names)
    columns = ["device_id", *(["reading_count"] if "reading_count" in names else [])]
    first = pq.read_table(paths[0], columns=columns)
    weights = first["reading_count"] if "reading_count" in names else None
    return device_ranges(first["device_id"], weights, shards)


def _readings(path) -> int:
    """Readings behind one feature hour (its windows when it has no reading_count)."""
    file = pq.ParquetFile(path)
    if "reading_count" not in file.schema_arrow.names:
        return file.metadata.num_rows
    total = pc.sum(pq.read_table(path, columns=["reading_count"])["reading_count"]).as_py()
    return int(total or 0)


def stream_query(con, sql: str, out, batch_rows: int) -> None:
    """Append a DuckDB query's rows to a partition writer (:meth:`ParquetStore.writer`) in
    record batches of ``batch_rows`` (never whole in memory); a query without rows still
    fixes the schema."""
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    wrote = False
    for batch in reader:
        if batch.num_rows:
            out.write(pa.Table.from_batches([batch]))
            wrote = True
    if not wrote and out.schema is None:
        out.schema = reader.schema
