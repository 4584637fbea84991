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


def _old_partition(store: ParquetStore) -> str:
    store.write("d", "2026-01-01-00:00", pd.DataFrame({"a": [0]}))
    return str(store.path("d", "2026-01-01-00:00"))


def _leftovers(store: ParquetStore) -> list[str]:
    return sorted(p.name for p in (store.root / "d").iterdir() if p.name.startswith("."))


def test_a_duckdb_write_read_while_syncing_shows_its_file_only_after_it_is_durable(
    tmp_path, monkeypatch
):
    """The block reads the written file while its fsync runs in the background; the rename
    waits for that fsync even when the block ends first, and the directory is synced last."""
    import threading

    store = ParquetStore(tmp_path)
    final = _old_partition(store)
    block_done = threading.Event()
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            events.append("dir synced")
        else:
            assert block_done.wait(timeout=60)  # still running when the block ends
            real_fsync(fd)
            events.append("file synced")

    def replace(src, dst):
        events.append("renamed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    con = duckdb.connect()
    with store.written_from_duckdb("d", "2026-01-01-00:00", con, "SELECT 7 AS a") as written:
        assert con.execute(f"SELECT a FROM read_parquet('{written}')").fetchall() == [(7,)]
        assert pd.read_parquet(final)["a"].tolist() == [0]  # the old partition still
        block_done.set()
    assert events == ["file synced", "renamed", "dir synced"]
    assert pd.read_parquet(final)["a"].tolist() == [7]
    assert _leftovers(store) == []


def test_a_failed_background_fsync_is_raised_and_keeps_the_previous_partition(
    tmp_path, monkeypatch
):
    store = ParquetStore(tmp_path)
    final = _old_partition(store)

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output error"):
        with store.written_from_duckdb("d", "2026-01-01-00:00", duckdb.connect(), "SELECT 7 AS a"):
            pass
    assert pd.read_parquet(final)["a"].tolist() == [0]
    assert _leftovers(store) == []


def test_a_failed_background_fsync_of_a_new_partition_leaves_none(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    (tmp_path / "d").mkdir()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError, match="No space"):
        with store.written_from_duckdb("d", "2026-01-01-00:00", duckdb.connect(), "SELECT 7 AS a"):
            pass
    assert not store.exists("d", "2026-01-01-00:00")
    assert list((tmp_path / "d").iterdir()) == []


def test_an_error_in_the_block_keeps_the_previous_partition(tmp_path, synced):
    store = ParquetStore(tmp_path)
    final = _old_partition(store)
    synced.clear()
    with pytest.raises(ValueError, match="check failed"):
        with store.written_from_duckdb("d", "2026-01-01-00:00", duckdb.connect(), "SELECT 7 AS a"):
            raise ValueError("check failed")
    assert synced == ["file"]  # the background fsync was waited for, nothing renamed
    assert pd.read_parquet(final)["a"].tolist() == [0]
    assert _leftovers(store) == []
