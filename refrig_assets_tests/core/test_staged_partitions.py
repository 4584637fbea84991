"""Partitions written together (ParquetStore.staged): every file is on disk before any is
renamed over its partition, so a crash or a failed fsync leaves each partition whole, old or
new, and no temporary file."""

import os
import stat

import duckdb
import pandas as pd
import pytest

from refrig_assets.core.storage import ParquetStore

pytestmark = pytest.mark.fault_injection

HOURS = [f"2026-01-01-{h:02d}:00" for h in range(3)]


def leftovers(store: ParquetStore) -> list[str]:
    return sorted(p.name for p in (store.root / "d").iterdir() if p.name.startswith("."))


def test_every_file_is_synced_before_any_rename_and_each_directory_once(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    steps: list[str] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        steps.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return fsync(fd)

    def recording_replace(src, dst):
        steps.append("rename")
        return replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    con = duckdb.connect()
    with store.staged() as batch:
        for i, key in enumerate(HOURS):
            written = batch.from_duckdb("d", key, con, f"SELECT {i} AS a")
            assert pd.read_parquet(written)["a"].tolist() == [i]  # readable before the rename
            assert not store.exists("d", key)

    assert steps == ["file"] * 3 + ["rename"] * 3 + ["dir"]
    assert [pd.read_parquet(store.path("d", k))["a"].tolist() for k in HOURS] == [[0], [1], [2]]
    assert leftovers(store) == []


def test_a_failed_fsync_renames_nothing_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    con = duckdb.connect()
    store.write_from_duckdb("d", HOURS[0], con, "SELECT 'old' AS a")
    fsync = os.fsync
    synced: list[int] = []

    def failing_on_the_third(fd):
        synced.append(fd)
        if len(synced) == 3:
            raise OSError(28, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_on_the_third)
    with pytest.raises(OSError, match="No space"), store.staged() as batch:
        for key in HOURS:
            batch.from_duckdb("d", key, con, "SELECT 'new' AS a")

    assert pd.read_parquet(store.path("d", HOURS[0]))["a"].tolist() == ["old"]
    assert not store.exists("d", HOURS[1]) and not store.exists("d", HOURS[2])
    assert leftovers(store) == []


def test_an_error_in_the_block_keeps_every_partition_as_it_was(tmp_path):
    store = ParquetStore(tmp_path)
    con = duckdb.connect()
    store.write_from_duckdb("d", HOURS[0], con, "SELECT 'old' AS a")
    with pytest.raises(duckdb.Error), store.staged() as batch:
        batch.from_duckdb("d", HOURS[0], con, "SELECT 'new' AS a")
        batch.from_duckdb("d", HOURS[1], con, "SELECT * FROM no_such_table")

    assert pd.read_parquet(store.path("d", HOURS[0]))["a"].tolist() == ["old"]
    assert not store.exists("d", HOURS[1])
    assert leftovers(store) == []


def test_a_staged_partition_is_the_file_write_from_duckdb_writes(tmp_path):
    staged, single = ParquetStore(tmp_path / "staged"), ParquetStore(tmp_path / "single")
    con = duckdb.connect()
    query = "SELECT range AS i, 'dev-' || range AS d, random() > 2 AS never FROM range(1000)"
    con.execute(f"CREATE TABLE t AS {query}")
    with staged.staged() as batch:
        batch.from_duckdb("d", HOURS[0], con, "SELECT * FROM t", row_group_size=100)
    single.write_from_duckdb("d", HOURS[0], con, "SELECT * FROM t", row_group_size=100)

    assert staged.path("d", HOURS[0]).read_bytes() == single.path("d", HOURS[0]).read_bytes()
