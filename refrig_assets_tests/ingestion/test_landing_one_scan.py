"""An hour of several Parquet landing files of one layout is typed in one scan, with the same
rows, in the same order, as one SELECT per file; any other hour keeps one SELECT per file."""

import os
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa
from support.quality_helpers import CONTRACT, HOUR, KEY, good_rows

from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex


def _delivered(path, frame: pd.DataFrame, minute: int) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    at = (HOUR + timedelta(minutes=minute)).timestamp()
    os.utime(path, (at, at))


def _landing(landing, *, mixed: bool = True) -> None:
    """Parquet files of one layout (odd rows, other arrival times, a file starting the hour
    before); ``mixed`` adds a CSV file and Parquet files of another column order."""
    landing.mkdir()
    odd = good_rows(4, device="dev-1")
    odd.loc[1, "ts"] = pd.Timestamp("1970-01-01", tz="UTC")  # implausible: claimed by its file
    odd.loc[2, "device_id"] = "bad id!"  # invalid_device_id
    odd.loc[3, "temperature_evaporator"] = float("nan")  # a missing value
    _delivered(landing / "a.parquet", odd, 20)
    _delivered(landing / "b.parquet", good_rows(3, device="dev-2"), 35)  # another received_at
    _delivered(landing / "d.parquet", good_rows(3, device="dev-4", start_minute=10), 41)
    # starts in the hour before: its implausible row belongs there, its others here
    early = good_rows(3, device="dev-5", start_minute=-1)
    early.loc[1, "ts"] = pd.Timestamp("2099-01-01", tz="UTC")
    _delivered(landing / "e.parquet", early, 42)
    if not mixed:
        return
    _delivered(landing / "c.csv", good_rows(2, device="dev-3"), 40)
    # the same columns in another order: a layout of its own, then one like it
    reordered = good_rows(2, device="dev-6")
    _delivered(landing / "f.parquet", reordered[reordered.columns[::-1]], 43)
    again = good_rows(2, device="dev-7")
    _delivered(landing / "g.parquet", again[again.columns[::-1]], 44)


def _rows(landing, index_path, *, together: bool) -> tuple[pa.Table, str]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        hour = hour_readings(
            con,
            landing,
            HOUR,
            HOUR + timedelta(hours=1),
            KEY,
            CONTRACT,
            LandingIndex(index_path),
            scan_together_files=together,
        )
        return con.execute(hour.sql).to_arrow_table(), hour.sql
    finally:
        con.close()


def test_files_of_one_layout_read_in_one_scan_give_the_rows_of_one_select_per_file(tmp_path):
    landing = tmp_path / "landing"
    _landing(landing, mixed=False)
    together, sql = _rows(landing, tmp_path / "index.json", together=True)
    apart, apart_sql = _rows(landing, tmp_path / "index.json", together=False)

    assert apart_sql.count("read_parquet(") == 4 and sql.count("read_parquet(") == 1
    assert together.equals(apart)  # same rows, values and order
    rows = together.to_pandas()
    files = rows["source_file"].str[0]
    assert files.unique().tolist() == list("abde") and len(rows) == 11
    by_file = rows.groupby(files)["received_at"].first()
    assert by_file["a"] < by_file["b"] < by_file["d"] < by_file["e"]
    assert set(rows["read_error"].dropna()) == {"implausible_timestamp", "invalid_device_id"}
    assert rows.loc[files == "e", "source_row"].tolist() == [2]  # 23:59 and 2099 go before
    assert rows["source_row"].tolist()[:4] == [0, 1, 2, 3]


def test_an_hour_of_several_layouts_keeps_one_select_per_file(tmp_path):
    landing = tmp_path / "landing"
    _landing(landing)
    together, sql = _rows(landing, tmp_path / "index.json", together=True)
    apart, _ = _rows(landing, tmp_path / "index.json", together=False)

    assert sql.count("read_parquet(") == 6
    assert together.equals(apart)
    assert together.to_pandas()["source_file"].str[0].unique().tolist() == list("abcdefg")


def test_a_late_file_read_with_others_is_marked_late_alone(tmp_path):
    landing = tmp_path / "landing"
    _landing(landing, mixed=False)
    first, _ = _rows(landing, tmp_path / "index.json", together=True)
    recorded = {
        f: fp
        for f, fp in {
            str(p.relative_to(landing)): f"{p.stat().st_size}:{p.stat().st_mtime_ns}"
            for p in landing.iterdir()
        }.items()
        if f != "b.parquet"
    }
    index = LandingIndex(tmp_path / "index.json")
    index.record_hour(KEY, recorded, datetime.now(UTC))
    index.save()

    together, _ = _rows(landing, tmp_path / "index.json", together=True)
    apart, _ = _rows(landing, tmp_path / "index.json", together=False)

    assert together.equals(apart)
    late = together.to_pandas().groupby("source_file")["late_arrival"].all()
    assert late[late].index.tolist() == ["b.parquet"]
    assert first.num_rows == together.num_rows


def test_the_written_partition_is_the_same_read_in_one_scan_or_file_by_file(tmp_path):
    landing = tmp_path / "landing"
    _landing(landing, mixed=False)
    written = []
    for together in (False, *[True] * 10):  # the order must hold every time
        store = ParquetStore(tmp_path / f"data-{together}")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        hour = hour_readings(
            con,
            landing,
            HOUR,
            HOUR + timedelta(hours=1),
            KEY,
            CONTRACT,
            LandingIndex(tmp_path / f"index-{together}.json"),
            scan_together_files=together,
        )
        path = store.write_from_duckdb("sensor_readings", KEY, con, hour.sql)
        con.close()
        written.append(pd.read_parquet(path))
    for frame in written[1:]:
        pd.testing.assert_frame_equal(frame, written[0])


def test_files_of_one_size_are_hashed_whole_only_when_their_last_bytes_match(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    body = good_rows(3, device="dev-1").to_csv(index=False)
    _write_text(landing / "a.csv", body)
    _write_text(landing / "b.csv", body.replace("dev-1", "dev-2"))  # one size, other content
    _write_text(landing / "c.csv", body)  # delivered twice
    index = LandingIndex(tmp_path / "index.json")
    con = duckdb.connect()
    hour = hour_readings(con, landing, HOUR, HOUR + timedelta(hours=1), KEY, CONTRACT, index)
    con.close()

    assert [r.rule for r in hour.rejected] == ["duplicate_file"]
    assert hour.files == ["a.csv", "b.csv"]
    assert index.entries["b.csv"].content_hash is None  # its last bytes already differ
    assert index.entries["a.csv"].content_hash == index.entries["c.csv"].content_hash


def _write_text(path, text: str) -> None:
    path.write_text(text)
    at = (HOUR + timedelta(minutes=30)).timestamp() + len(list(path.parent.iterdir()))
    os.utime(path, (at, at))
