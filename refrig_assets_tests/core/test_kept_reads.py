"""Reads kept within a range of hours: a small partition read again gives the table read before
while its file is unchanged, and the file's new content once it is replaced; outside a range
every read reads the file."""

import os

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core import storage
from refrig_assets.core.storage import ParquetStore, read_parquet_table, reads_kept


def _store(tmp_path) -> ParquetStore:
    store = ParquetStore(tmp_path)
    store.write(
        "features", "2026-01-01-00:00", pd.DataFrame({"device_id": ["a", "b"], "x": [1.0, 2.0]})
    )
    return store


def test_a_file_read_again_in_a_range_is_the_table_read_before_until_it_is_replaced(tmp_path):
    store = _store(tmp_path)
    path = store.path("features", "2026-01-01-00:00")
    with reads_kept():
        first = read_parquet_table(path)
        assert read_parquet_table(path) is first
        assert read_parquet_table(path, columns=["x"]) is not first  # columns: a read of its own
        assert read_parquet_table(path, columns=["x"]).column_names == ["x"]
        filtered = read_parquet_table(path, filters=[("device_id", "=", "b")])
        assert filtered.num_rows == 1
        assert store.read("features", "2026-01-01-00:00").equals(first.to_pandas())

        store.write("features", "2026-01-01-00:00", pd.DataFrame({"device_id": ["c"], "x": [3.0]}))
        replaced = read_parquet_table(path)
        assert replaced is not first and replaced.equals(pq.read_table(path))
        assert store.read_many("features", ["2026-01-01-00:00"])["device_id"].tolist() == ["c"]
    # the range is over: nothing is kept
    assert read_parquet_table(path) is not read_parquet_table(path)
    assert storage._KEPT.tables == {} and storage._KEPT.bytes == 0


def test_a_file_changed_in_place_with_its_size_and_mtime_is_read_again(tmp_path):
    store = _store(tmp_path)
    path = store.path("features", "2026-01-01-00:00")
    with reads_kept():
        first = read_parquet_table(path)
        st = os.stat(path)
        other = tmp_path / "other.parquet"
        pd.DataFrame({"device_id": ["z", "y"], "x": [9.0, 8.0]}).to_parquet(other, index=False)
        os.replace(other, path)  # a new inode under the same name
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert read_parquet_table(path).column("device_id").to_pylist() == ["z", "y"]
        assert first.column("device_id").to_pylist() == ["a", "b"]


def test_large_files_are_not_kept_and_the_oldest_tables_go_first(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    paths = []
    for h in range(3):
        key = f"2026-01-01-0{h}:00"
        store.write("features", key, pd.DataFrame({"x": [float(h)] * 10}))
        paths.append(store.path("features", key))
    monkeypatch.setattr(storage, "KEPT_TABLES", 2)
    with reads_kept():
        a, b, c = (read_parquet_table(p) for p in paths)
        assert read_parquet_table(paths[2]) is c and read_parquet_table(paths[1]) is b
        assert read_parquet_table(paths[0]) is not a  # dropped when the third was kept
        monkeypatch.setattr(storage, "KEPT_FILE_BYTES", 0)
        big = tmp_path / "big.parquet"
        pd.DataFrame({"x": [1.0]}).to_parquet(big)
        assert read_parquet_table(big) is not read_parquet_table(big)


def test_a_partition_this_process_replaces_is_forgotten_when_renamed_into_place(tmp_path):
    """A small file rewritten within a clock tick can show the stamp of the one it replaces
    (a freed inode reused, the same size and mtime): the store's own writes, one by one or
    staged, drop what was kept of the partition they replace."""
    store = _store(tmp_path)
    path = store.path("features", "2026-01-01-00:00")
    kept = (str(path), None, "None")
    with reads_kept():
        read_parquet_table(path)
        assert kept in storage._KEPT.tables
        store.write("features", "2026-01-01-00:00", pd.DataFrame({"device_id": ["c"], "x": [3.0]}))
        assert kept not in storage._KEPT.tables
        read_parquet_table(path)
        assert kept in storage._KEPT.tables
        with store.staged() as batch:
            batch.from_duckdb(
                "features",
                "2026-01-01-00:00",
                duckdb.connect(),
                "SELECT 'd' AS device_id, 4.0 AS x",
            )
        assert kept not in storage._KEPT.tables
        assert read_parquet_table(path).column("device_id").to_pylist() == ["d"]
