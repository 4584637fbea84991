"""The feature windows the score steps of one process read, shared between the steps.

The hourly score assets run one after the other in one process (the hourly job's in-process
executor), and each reads the same feature hour (and the look-back windows of the hour before)
for the columns its detector uses. :func:`read_feature_hours` keeps what the last read took
from each file: the next step reads only the columns not read yet and is given the rest from
memory, so the hour's shared columns (keys, completeness, flags, most inputs) are decoded once.

A kept table is given only while its file is the one read (same inode, size, modification and
change time: every write renames a new file into place) and only for the same filters, so a
read gives what reading the file gives. Only the last read is kept: a read of other files or
other filters (the next hour, the next device shard, another look-back) drops it first, so
what is held stays one read's worth, which the memory budget already sizes (device shards).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from refrig_assets.core.storage import ParquetStore

# (inode, size, modification time in ns, change time in ns) of a file as read
Stamp = tuple[int, int, int, int]


class _KeptFeatures:
    """The Arrow tables of the last read, per (file, filters), with the columns read so far."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tables: dict[tuple[str, str], tuple[Stamp, pa.Table]] = {}

    def read(self, paths: list[Path], columns: list[str], filters: list | None) -> list[pa.Table]:
        """Each file's rows that meet ``filters``, with ``columns`` in that order."""
        wanted = {(str(p), repr(filters)) for p in paths}
        with self.lock:
            for key in [k for k in self.tables if k not in wanted]:
                del self.tables[key]  # not held while this read allocates its own
            return [self._read_one(p, columns, filters) for p in paths]

    def _read_one(self, path: Path, columns: list[str], filters: list | None) -> pa.Table:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = (str(path), repr(filters))
        found = self.tables.get(key)
        table = found[1] if found is not None and found[0] == stamp else None
        missing = columns if table is None else [c for c in columns if c not in table.column_names]
        if table is not None and missing:
            extra = pq.read_table(path, columns=missing, filters=filters)
            if extra.num_rows == table.num_rows:  # the same filters keep the same rows
                for name in missing:
                    table = table.append_column(extra.schema.field(name), extra[name])
            else:
                table = None
        if table is None:
            table = pq.read_table(path, columns=columns, filters=filters)
        if missing:
            self.tables[key] = (stamp, table)
        return table.select(columns)

    def clear(self) -> None:
        with self.lock:
            self.tables.clear()


_KEPT = _KeptFeatures()


def read_feature_hours(
    store: ParquetStore,
    partition_keys: Iterable[str],
    columns: list[str],
    filters: list | None = None,
    dataset: str = "device_features",
) -> pd.DataFrame:
    """:meth:`ParquetStore.read_many` of ``dataset`` (the partitions that exist, ``columns``,
    rows meeting ``filters``), the columns an earlier read of the same files and filters took
    given from memory (see the module's description)."""
    paths = store.existing_paths(dataset, partition_keys)
    if not paths:
        return pd.DataFrame()
    return pa.concat_tables(
        _KEPT.read(paths, list(columns), filters),
        # Partitions written by pandas (ns) and DuckDB (us) differ only in timestamp unit.
        promote_options="permissive",
    ).to_pandas()


def forget_feature_reads() -> None:
    """Drop every kept table (memory back at once, e.g. after the score steps of an hour)."""
    _KEPT.clear()
