"""The quality step's clean file is checked while its fsync runs, and becomes the partition only
once that fsync succeeded: nothing under the partition's name before its data is on disk, and a
failed fsync or check leaves the previous partitions and no temporary file, in one piece or in
shards. The quarantine partition is written only after the clean one."""

import os
import threading
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from support.quality_helpers import CONTRACT, HOUR, KEY, arrived_in_hour, good_rows

from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.quality.assets import clean_hour_written
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.shards import clean_hour_in_shards

pytestmark = pytest.mark.fault_injection

TAILS = "stuck_sensor_tails"


@pytest.fixture
def hour(tmp_path) -> tuple[ParquetStore, Path, pa.Table]:
    """One typed hour of two registered devices, and an old clean partition for that hour."""
    landing = tmp_path / "landing"
    landing.mkdir()
    for device in ("dev-1", "dev-2"):
        good_rows(n=30, device=device).to_parquet(landing / f"{device}.parquet", index=False)
    arrived_in_hour(*landing.iterdir())
    store = ParquetStore(tmp_path / "data")
    con = connect()
    try:
        index = LandingIndex(tmp_path / "index.json")
        typed = hour_readings(
            con, landing, HOUR, HOUR + pd.Timedelta(hours=1), KEY, CONTRACT, index
        )
        store.write_from_duckdb("sensor_readings", KEY, con, typed.sql)
    finally:
        con.close()
    store.write("clean_readings", KEY, pd.DataFrame({"old": [0]}))
    registered = pa.table({"device_id": pa.array(["dev-1", "dev-2"], pa.string())})
    return store, store.path("sensor_readings", KEY), registered


def _dataset(fd: int) -> str:
    """The dataset of the file open as ``fd`` (a partition's directory gives its parent's)."""
    return Path(os.readlink(f"/proc/self/fd/{fd}")).parent.name


def _leftovers(store: ParquetStore) -> list[str]:
    return sorted(
        f"{d.name}/{p.name}" for d in store.root.iterdir() for p in d.iterdir() if p.name[0] == "."
    )


def _clean(store, source, registered, shards, meanwhile):
    con = connect()
    try:
        return clean_hour_in_shards(
            con,
            store,
            KEY,
            source,
            CONTRACT,
            registered,
            shards=shards,
            tails_dataset=TAILS,
            meanwhile=meanwhile,
        )
    finally:
        con.close()


@pytest.mark.parametrize("shards", [1, 2])
def test_the_clean_file_is_checked_while_synced_and_renamed_only_after(hour, shards, monkeypatch):
    store, source, registered = hour
    events: list[str] = []
    checked = threading.Event()
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        if _dataset(fd) == "clean_readings":
            assert checked.wait(timeout=60)  # still running when the check ends
            real_fsync(fd)
            events.append("clean synced")
        else:
            real_fsync(fd)

    def replace(src, dst):
        events.append(f"{Path(dst).parent.name} renamed")
        real_replace(src, dst)

    def check(written: Path, result) -> None:
        rows = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{written}')")
        assert rows.fetchall() == [(result.rows_clean,)]
        assert pd.read_parquet(store.path("clean_readings", KEY)).columns.tolist() == ["old"]
        events.append("checked")
        checked.set()

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path, result = _clean(store, source, registered, shards, check)
    assert result.rows_clean == 60
    assert events == [
        f"{TAILS} renamed",
        "checked",
        "clean synced",
        "clean_readings renamed",
    ]
    assert len(pd.read_parquet(path)) == 60
    assert _leftovers(store) == []


@pytest.mark.parametrize("shards", [1, 2])
def test_a_failed_fsync_of_the_clean_file_keeps_the_previous_partition(hour, shards, monkeypatch):
    store, source, registered = hour
    real_fsync = os.fsync

    def fsync(fd):
        if _dataset(fd) == "clean_readings":
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error"):
        _clean(store, source, registered, shards, lambda written, result: None)
    assert pd.read_parquet(store.path("clean_readings", KEY)).columns.tolist() == ["old"]
    assert _leftovers(store) == []


@pytest.mark.parametrize("shards", [1, 2])
def test_an_error_in_the_check_keeps_the_previous_partition(hour, shards):
    store, source, registered = hour

    def failing(written, result):
        raise duckdb.IOException("check could not read")

    with pytest.raises(duckdb.IOException, match="check could not read"):
        _clean(store, source, registered, shards, failing)
    assert pd.read_parquet(store.path("clean_readings", KEY)).columns.tolist() == ["old"]
    assert _leftovers(store) == []


def test_the_quarantine_is_written_after_the_clean_partition_and_not_when_it_fails(
    hour, monkeypatch
):
    store, _, registered = hour
    refrig = SimpleNamespace(store=store, engine="duckdb")
    real_fsync, real_replace = os.fsync, os.replace
    renamed: list[str] = []

    def replace(src, dst):
        renamed.append(Path(dst).parent.name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    con = connect()
    try:
        clean_hour_written(refrig, con, KEY, registered, meanwhile=lambda written, result: None)
        assert renamed == [TAILS, "clean_readings", "quarantined_readings"]
        os.remove(store.path("quarantined_readings", KEY))

        def fsync(fd):
            if _dataset(fd) == "clean_readings":
                raise OSError(28, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        with pytest.raises(OSError, match="No space"):
            clean_hour_written(refrig, con, KEY, registered, meanwhile=lambda w, r: None)
    finally:
        con.close()
    assert not store.exists("quarantined_readings", KEY)
    assert len(pd.read_parquet(store.path("clean_readings", KEY))) == 60  # the first run's
    assert _leftovers(store) == []
