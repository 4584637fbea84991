"""The feature windows the score steps of one process read, shared between the steps.

The hourly score assets run one after the other in one process (the hourly job's in-process
executor), and each reads the same feature hour and the look-back windows of the hour before
for the columns its detector uses. :func:`read_feature_hours` keeps the last read: the next
step reads only the columns not read yet and is given the rest from memory, so the columns the
detectors share (keys, completeness, flags, most inputs) are decoded once. The rows of several
hours are given in device and window-start order (hour after hour as stored), the order every
detector sorts them into (a stable sort, so scores are those of the stored order): the sort,
and the reordering of each column, are done once per read rather than once per detector.

What is kept is given only while every file is the one read (same inode, size, modification
and change time: every write renames a new file into place) and only for the same filters, so
a read gives the rows reading the files gives. Only the last read is kept: a read of other
files or other filters (the next hour, the next device shard, another look-back) drops it
first, so what is held stays one read's worth, which the memory budget already sizes (device
shards)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrig_assets.core.storage import ParquetStore

# Rows of several hours are given in this order, the one the detectors score them in.
ORDER_KEYS = ("device_id", "window_start")


class _KeptFeatures:
    """The last read: its files' stamps, filters and rows (in device order) with the columns
    read so far."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple | None = None
        self.sizes: list[int] = []  # each file's rows that meet the filters
        self.order: pa.Array | None = None  # the rows of the files, one after the other, sorted
        self.table: pa.Table | None = None

    def read(
        self, paths: list[Path], columns: list[str], filters: list | None, keep: bool
    ) -> pa.Table:
        """The rows of ``paths`` (one after the other) that meet ``filters``, with ``columns``
        in that order; rows of several files sorted by device and window start. ``keep``: held
        for the next read (else dropped once given)."""
        stamps = []
        for path in paths:
            st = os.stat(path)
            stamps.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        key = (tuple(stamps), repr(filters))
        with self.lock:
            if key != self.key:
                self.clear_kept()  # not held while this read allocates its own
            missing = [c for c in columns if self.table is None or c not in self.table.column_names]
            if missing and not self._add(paths, missing, filters):
                self.clear_kept()
                self._add(paths, columns, filters)
            self.key = key
            assert self.table is not None
            table = self.table.select(columns)
            if not keep:
                self.clear_kept()
            return table

    def _add(self, paths: list[Path], columns: list[str], filters: list | None) -> bool:
        """Read ``columns`` of every file and add them; False when a file's rows are not the
        rows kept (then nothing is added)."""
        if self.table is None and len(paths) > 1:  # the keys of the order, whatever is asked
            names = pq.read_schema(paths[0]).names
            columns = [*columns, *(k for k in ORDER_KEYS if k in names and k not in columns)]
        parts = [pq.read_table(p, columns=columns, filters=filters) for p in paths]
        sizes = [t.num_rows for t in parts]
        if self.table is not None and sizes != self.sizes:
            return False
        # Partitions written by pandas (ns) and DuckDB (us) differ only in timestamp unit.
        read = pa.concat_tables(parts, promote_options="permissive")
        if self.table is None:
            self.sizes = sizes
            self.order = _device_order(read) if len(parts) > 1 else None
        if self.order is not None:
            read = read.take(self.order)
        if self.table is None:
            self.table = read
        else:
            for name in columns:
                self.table = self.table.append_column(read.schema.field(name), read[name])
        return True

    def clear_kept(self) -> None:
        self.key, self.sizes, self.order, self.table = None, [], None, None

    def clear(self) -> None:
        with self.lock:
            self.clear_kept()


def _device_order(table: pa.Table) -> pa.Array | None:
    """The rows of several hours (hour after hour) in device then window-start order, as the
    detectors score them (a stable sort: rows of equal keys keep their order, missing keys
    last); None when the read has no such keys."""
    if not all(k in table.column_names for k in ORDER_KEYS):
        return None
    return pc.sort_indices(table, sort_keys=[(k, "ascending") for k in ORDER_KEYS])


_KEPT = _KeptFeatures()


def read_feature_hours(
    store: ParquetStore,
    partition_keys: Iterable[str],
    columns: list[str],
    filters: list | None = None,
    dataset: str = "device_features",
    keep: bool = True,
) -> pd.DataFrame:
    """The rows of :meth:`ParquetStore.read_many` of ``dataset`` (the partitions that exist,
    ``columns``, rows meeting ``filters``), those of several partitions in device and
    window-start order; the columns an earlier read of the same files and filters took are
    given from memory (see the module's description). ``keep=False``: not held for the next
    read (a read too large to hold beside its reader's own frame of it)."""
    paths = store.existing_paths(dataset, partition_keys)
    if not paths:
        return pd.DataFrame()
    return _KEPT.read(paths, list(columns), filters, keep).to_pandas()


def forget_feature_reads() -> None:
    """Drop every kept table (memory back at once, e.g. after the score steps of an hour)."""
    _KEPT.clear()
