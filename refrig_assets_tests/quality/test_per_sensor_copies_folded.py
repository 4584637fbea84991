"""A reading delivered in parts (one file per sensor) is folded into one reading.

A gateway that sends each sensor of a device in its own file delivers several rows of one
``(device_id, ts)``, each holding some of the measurements. Where no column holds two different
values among them, the first copy to land is kept with every value, and each later copy that
added a value is quarantined as ``merged_reading`` naming the kept file and row. Copies that
conflict, and a resend that adds nothing, stay ``duplicate_reading`` as before. The same on
every path that cleans an hour: one piece, device shards and ranges, and Spark.
"""

import os
from datetime import UTC, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.quality_helpers import CONTRACT, HOUR, KEY, good_rows, quarantine_rows, run_hour

from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.rules import decode_mask
from refrig_assets.quality.shards import clean_hour_in_shards

TEMP = "temperature_evaporator"
FIRST, SECOND = 1_767_225_900, 1_767_225_960  # 00:05 and 00:06 UTC
REGISTERED = pa.table({"device_id": pa.array(["dev-1", "dev-2"], pa.string())})


def _part(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[["device_id", "ts", *columns]]


def _landing(tmp_path: Path, door: pd.DataFrame | None = None) -> Path:
    """dev-1's temperature in ``temp.parquet`` (landed first) and its door in ``door.parquet``
    (``door``: that file's rows instead), 3 readings each; dev-2 whole in ``other.parquet``."""
    landing = tmp_path / "landing"
    landing.mkdir()
    dev1 = good_rows(3)
    dev1["door_open"] = [True, False, True]
    files = {
        "temp.parquet": (_part(dev1, [TEMP]), FIRST),
        "door.parquet": (_part(dev1, ["door_open"]) if door is None else door, SECOND),
        "other.parquet": (good_rows(3, device="dev-2"), FIRST),
    }
    for name, (frame, at) in files.items():
        frame.to_parquet(landing / name, index=False)
        os.utime(landing / name, (at, at))
    return landing


def _dev1(clean: pd.DataFrame) -> pd.DataFrame:
    return clean[clean["device_id"] == "dev-1"].sort_values("ts", ignore_index=True)


def _assert_folded(clean: pd.DataFrame, result) -> None:
    dev1 = _dev1(clean)
    assert len(clean) == 6 and len(dev1) == 3
    assert dev1[TEMP].tolist() == good_rows(3)[TEMP].tolist()
    assert dev1["door_open"].tolist() == [True, False, True]
    assert dev1["source_file"].tolist() == ["temp.parquet"] * 3
    assert all("DUPLICATE" not in decode_mask(int(m)) for m in clean["quality_mask"])
    assert quarantine_rows(result) == [
        ["door.parquet", r, None, "merged_reading", str(HOUR + timedelta(minutes=r))[:19] + "+00"]
        for r in range(3)
    ]
    assert (
        "values of door_open merged into the reading of device dev-1 at "
        in (result.quarantine["message"].iloc[0])
    )
    assert result.quarantine["message"].iloc[0].endswith("(kept: temp.parquet row 0)")
    assert result.rows_read == 9 and result.rows_clean == 6 and result.rows_quarantined == 3
    assert result.balanced and result.flag_counts["DUPLICATE"] == 0


def test_a_reading_sent_one_sensor_per_file_is_one_reading_with_every_value(tmp_path):
    clean, result = run_hour(_landing(tmp_path))
    _assert_folded(clean, result)


def test_copies_whose_values_conflict_stay_duplicates_and_the_first_is_kept(tmp_path):
    other = good_rows(3, value=20.0)
    other["door_open"] = True
    clean, result = run_hour(_landing(tmp_path, door=_part(other, [TEMP, "door_open"])))
    dev1 = _dev1(clean)
    assert dev1[TEMP].tolist() == good_rows(3)[TEMP].tolist()
    assert dev1["door_open"].isna().all()
    assert [q[3] for q in quarantine_rows(result)] == ["duplicate_reading"] * 3
    assert all("DUPLICATE" in decode_mask(int(m)) for m in dev1["quality_mask"])


def test_a_resend_that_adds_nothing_stays_a_duplicate_of_the_folded_reading(tmp_path):
    # door.parquet's copies fold into temp.parquet's; resend.parquet repeats two temperatures
    landing = _landing(tmp_path)
    _part(good_rows(2), [TEMP]).to_parquet(landing / "resend.parquet", index=False)
    os.utime(landing / "resend.parquet", (SECOND + 60, SECOND + 60))
    clean, result = run_hour(landing)
    dev1 = _dev1(clean)
    assert dev1["door_open"].tolist() == [True, False, True]
    rules = {(q[0], q[3]) for q in quarantine_rows(result)}
    assert rules == {("door.parquet", "merged_reading"), ("resend.parquet", "duplicate_reading")}
    duplicated = ["DUPLICATE" in decode_mask(int(m)) for m in dev1["quality_mask"]]
    assert duplicated == [True, True, False]
    assert result.rows_read == 11 and result.balanced


def _readings_partition(landing: Path, root: Path) -> tuple[ParquetStore, Path]:
    store = ParquetStore(root / "data")
    index = LandingIndex(root / "index.json")
    con = connect()
    try:
        hour = hour_readings(con, landing, HOUR, HOUR + timedelta(hours=1), KEY, CONTRACT, index)
        store.write_from_duckdb("sensor_readings", KEY, con, hour.sql)
    finally:
        con.close()
    return store, store.path("sensor_readings", KEY)


@pytest.mark.parametrize("shards, ranges", [(1, 1), (1, 2), (2, 1)])
def test_the_sharded_quality_step_folds_the_same_copies(tmp_path, shards, ranges):
    store, readings = _readings_partition(_landing(tmp_path), tmp_path)
    path, result = clean_hour_in_shards(
        connect(), store, KEY, readings, CONTRACT, REGISTERED, shards=shards, ranges=ranges
    )
    clean = connect().execute(f"SELECT * FROM read_parquet('{path}')").df()
    _assert_folded(clean, result)
    one_piece, _ = run_hour(tmp_path / "landing", index_path=tmp_path / "other-index.json")
    pd.testing.assert_frame_equal(clean, one_piece, check_dtype=False)


@pytest.mark.slow  # one Spark session
def test_quality_on_spark_folds_the_same_copies(tmp_path):
    from refrig_assets.engines.spark import spark_session
    from refrig_assets.engines.spark_hourly import clean_hour_on_spark

    _, readings = _readings_partition(_landing(tmp_path), tmp_path)
    spark = spark_session("local[1]")
    try:
        quality = clean_hour_on_spark(spark, str(readings), CONTRACT, REGISTERED)
        try:
            clean = quality.clean.toPandas()
            result = quality.result
        finally:
            quality.close()
    finally:
        spark.stop()
    clean["ts"] = clean["ts"].map(lambda t: t if t.tzinfo else t.replace(tzinfo=UTC))
    _assert_folded(clean, result)


@pytest.mark.parametrize("options", ["cuts", "joined", "sorted"])
def test_every_other_way_of_cleaning_the_hour_folds_the_same_copies(tmp_path, options):
    from refrig_assets.core.device_ranges import device_cuts
    from refrig_assets.core.duck import sql_str
    from refrig_assets.quality.rules import clean_hour

    _, readings = _readings_partition(_landing(tmp_path), tmp_path)
    kwargs = {
        "cuts": {"cuts": device_cuts(readings, 2) or ["dev-2"]},
        "joined": {"flags_in_place": False},
        "sorted": {},
    }[options]
    if options == "sorted":  # the rows in reverse: the pass sorts them first
        table = pq.read_table(readings)
        readings = tmp_path / "reversed.parquet"
        pq.write_table(table.take(list(range(table.num_rows))[::-1]), readings)
    with connect() as con:
        source = f"read_parquet({sql_str(str(readings))})"
        clean_sql, result = clean_hour(con, source, CONTRACT, REGISTERED, **kwargs)
        clean = con.execute(clean_sql).df()
    _assert_folded(clean, result)
