"""Every way a partition is written makes the new file durable and then its rename durable, so a
power loss leaves the old partition or the whole new one."""

import os
import stat

import duckdb
import pandas as pd
import pytest

from refrig_assets.core.storage import ParquetStore

pytestmark = pytest.mark.fault_injection


@pytest.fixture
def synced(monkeypatch):
    """The kinds of things fsync'd, in order: 'file' or 'dir'."""
    calls = []
    real = os.fsync

    def recording(fd):
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return calls


def test_a_pandas_write_syncs_the_file_then_its_directory(tmp_path, synced):
    ParquetStore(tmp_path).write("d", "2026-01-01-00:00", pd.DataFrame({"a": [1]}))
    assert synced == ["file", "dir"]


def test_a_duckdb_write_syncs_the_file_then_its_directory(tmp_path, synced):
    path = ParquetStore(tmp_path).write_from_duckdb(
        "d", "2026-01-01-00:00", duckdb.connect(), "SELECT 1 AS a"
    )
    assert synced == ["file", "dir"]
    assert pd.read_parquet(path)["a"].tolist() == [1]


def test_a_piecewise_write_syncs_the_file_then_its_directory(tmp_path, synced):
    with ParquetStore(tmp_path).writer("d", "2026-01-01-00:00") as out:
        out.write(pd.DataFrame({"a": [1, 2]}))
    assert synced == ["file", "dir"]


def test_an_empty_partition_written_from_pandas_reads_back_with_its_neighbours(tmp_path):
    """An empty hour's frame has untyped (object) columns; stored as strings it concatenates
    with the typed partitions around it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = ParquetStore(tmp_path)
    store.write("s", "2026-01-01-00:00", pd.DataFrame({"model_id": ["m"], "n": [1]}))
    store.write("s", "2026-01-01-01:00", pd.DataFrame({"model_id": pd.Series([], dtype=object)}))
    empty = pq.read_table(store.path("s", "2026-01-01-01:00"))
    assert empty.schema.field("model_id").type == pa.string()
    both = store.read_many("s", ["2026-01-01-00:00", "2026-01-01-01:00"])
    assert both["model_id"].tolist() == ["m"]
