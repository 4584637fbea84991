"""Of a reading delivered twice, the copy that landed first is kept, whatever the files' names.

The hour's copies of one reading (device_id, ts) are taken in the order their files landed (their
mtime, the rows' ``received_at``); files that landed at the same instant by name. This holds on
every path that cleans an hour: one piece, device shards and ranges, and Spark.
"""

import os
from datetime import UTC, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from support.quality_helpers import CONTRACT, HOUR, KEY, good_rows, quarantine_rows, run_hour

from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.shards import clean_hour_in_shards

ON_TIME = 1_767_225_900  # 2026-01-01 00:05 UTC
RESENT = 1_767_229_200  # 01:00, an hour already processed
SENSOR = CONTRACT.sensor_columns[0]


def _landing(tmp_path: Path, resent_at: int = RESENT) -> Path:
    """dev-1 and dev-2 on time in ``readings.parquet``; dev-1's first reading sent again, with
    other values, in ``late_resend.parquet`` (a name that sorts first)."""
    landing = tmp_path / "landing"
    landing.mkdir()
    on_time = pd.concat([good_rows(3), good_rows(3, device="dev-2")], ignore_index=True)
    on_time.to_parquet(landing / "readings.parquet")
    os.utime(landing / "readings.parquet", (ON_TIME, ON_TIME))
    good_rows(1, value=20.0).to_parquet(landing / "late_resend.parquet")
    os.utime(landing / "late_resend.parquet", (resent_at, resent_at))
    return landing


def _first_reading(clean) -> float:
    row = clean[(clean["device_id"] == "dev-1") & (clean["ts"] == HOUR)]
    assert len(row) == 1
    return float(row[SENSOR].iloc[0])


def test_a_resent_reading_landing_later_does_not_replace_the_one_already_kept(tmp_path):
    clean, result = run_hour(_landing(tmp_path))
    assert len(clean) == 6
    assert _first_reading(clean) == float(good_rows(1)[SENSOR].iloc[0])
    entry = quarantine_rows(result)[0]
    assert entry[:4] == ["late_resend.parquet", 0, None, "duplicate_reading"]
    assert "(kept: readings.parquet row 0)" in result.quarantine["message"].iloc[0]


def test_a_copy_that_landed_first_is_kept_even_when_its_name_sorts_first(tmp_path):
    # the same files, the resend now landed before the other: arrival decides, not the name
    clean, result = run_hour(_landing(tmp_path, resent_at=ON_TIME - 60))
    assert _first_reading(clean) == float(good_rows(1, value=20.0)[SENSOR].iloc[0])
    assert quarantine_rows(result)[0][:4] == ["readings.parquet", 0, None, "duplicate_reading"]


def test_copies_that_landed_at_the_same_instant_are_taken_by_file_name(tmp_path):
    clean, result = run_hour(_landing(tmp_path, resent_at=ON_TIME))
    assert _first_reading(clean) == float(good_rows(1, value=20.0)[SENSOR].iloc[0])
    assert quarantine_rows(result)[0][:4] == ["readings.parquet", 0, None, "duplicate_reading"]


def _readings_partition(landing: Path, root: Path) -> tuple[ParquetStore, Path]:
    """The hour's typed readings written as its sensor_readings partition, as the asset does."""
    store = ParquetStore(root / "data")
    index = LandingIndex(root / "index.json")
    con = connect()
    try:
        hour = hour_readings(con, landing, HOUR, HOUR + timedelta(hours=1), KEY, CONTRACT, index)
        store.write_from_duckdb("sensor_readings", KEY, con, hour.sql)
    finally:
        con.close()
    return store, store.path("sensor_readings", KEY)


REGISTERED = pa.table({"device_id": pa.array(["dev-1", "dev-2"], pa.string())})


@pytest.mark.parametrize("shards, ranges", [(1, 1), (1, 2), (2, 1)])
def test_the_sharded_quality_step_keeps_the_copy_that_landed_first(tmp_path, shards, ranges):
    store, readings = _readings_partition(_landing(tmp_path), tmp_path)
    path, result = clean_hour_in_shards(
        connect(), store, KEY, readings, CONTRACT, REGISTERED, shards=shards, ranges=ranges
    )
    clean = connect().execute(f"SELECT * FROM read_parquet('{path}')").df()
    assert len(clean) == 6
    assert _first_reading(clean) == float(good_rows(1)[SENSOR].iloc[0])
    assert quarantine_rows(result)[0][:4] == ["late_resend.parquet", 0, None, "duplicate_reading"]


@pytest.mark.slow  # one Spark session
def test_quality_on_spark_keeps_the_copy_that_landed_first(tmp_path):
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
    assert len(clean) == 6
    assert _first_reading(clean) == float(good_rows(1)[SENSOR].iloc[0])
    assert quarantine_rows(result)[0][:4] == ["late_resend.parquet", 0, None, "duplicate_reading"]
