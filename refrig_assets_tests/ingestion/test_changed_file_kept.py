"""A landing file delivered again with fewer rows (a truncated re-upload) replaces nothing that
was ingested: the hour keeps the readings the new version dropped, while the readings it still
has take its values (a correction corrects). ``landing.authoritative: true`` in
``config/ingestion.yaml`` makes the new version replace the old one whole."""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
from support.landing_world import H0, LandingWorld, authoritative_landing, metadata
from support.quality_helpers import CONTRACT, good_rows

from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex

pytestmark = pytest.mark.fault_injection

NAME = "readings_20260101T00_dev-1.parquet"
READINGS = ["sensor_readings"]


def deliver(world: LandingWorld, rows: pd.DataFrame, name: str = NAME, version: int = 0) -> None:
    """Write ``rows`` as landing file ``name``, each version with a later mtime."""
    path = world.landing / name
    rows.to_parquet(path, index=False)
    at = 1_767_229_200 + 60 * version  # 2026-01-01 01:00 UTC onwards
    os.utime(path, (at, at))


def readings(world: LandingWorld) -> pd.DataFrame:
    rows = world.rows("sensor_readings", H0)
    return rows[rows["source_row"] >= 0].sort_values(["device_id", "ts"]).reset_index(drop=True)


def user_logs(instance, result) -> list[str]:
    return [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]


@pytest.fixture
def first(refrig_home):
    """Hour 00 ingested from one file of six readings of dev-1."""
    world = LandingWorld()
    six = good_rows(6)
    deliver(world, six)
    with dg.instance_for_test() as instance:
        world.run_hour(instance, H0, READINGS)
        yield world, instance, six


def test_a_truncated_re_upload_keeps_the_readings_it_dropped(first):
    world, instance, six = first
    before = readings(world)
    deliver(world, six.iloc[:3], version=1)
    result = world.run_hour(instance, H0, READINGS)
    after = readings(world)
    assert len(after) == 6
    same = [c for c in after.columns if c not in ("received_at", "late_arrival")]
    pd.testing.assert_frame_equal(after[same], before[same])
    # the three readings the new version dropped are the first version's, as received then
    assert (after["received_at"].iloc[3:] == before["received_at"].iloc[3:]).all()
    assert (after["received_at"].iloc[:3] > before["received_at"].iloc[:3]).all()
    assert metadata(result, "sensor_readings")["kept_rows_of_changed_files"] == 3
    [warning] = [m for m in user_logs(instance, result) if "kept" in m and NAME in m]
    assert "3 reading(s)" in warning

    # materialized again with nothing changed since, the kept readings stay
    deliver(world, good_rows(2, device="dev-2"), name="readings_20260101T00_dev-2.parquet")
    result = world.run_hour(instance, H0, READINGS)
    assert len(readings(world)) == 8
    assert metadata(result, "sensor_readings")["kept_rows_of_changed_files"] == 3


def test_a_correction_replaces_the_values_of_the_readings_it_still_has(first):
    world, instance, six = first
    corrected = six.iloc[:3].copy()
    sensor = [c for c in six.columns if c not in ("device_id", "ts", "door_open")][0]
    corrected[sensor] += 1.0
    deliver(world, corrected, version=1)
    world.run_hour(instance, H0, READINGS)
    after = readings(world)
    assert list(after[sensor]) == [*corrected[sensor], *six[sensor].iloc[3:]]
    # the three corrected readings come from the new version, the others from the first
    assert after["received_at"].nunique() == 2


def test_an_old_bad_row_the_new_version_fixed_does_not_come_back(first):
    world, instance, six = first
    bad = six.copy()
    bad.loc[5, "ts"] = pd.Timestamp("2099-01-01", tz="UTC")  # implausible: a read error
    deliver(world, bad, version=1)  # the 00:05 reading became a bad row: the good one is kept
    world.run_hour(instance, H0, READINGS)
    assert len(world.rows("sensor_readings", H0)) == 7
    assert world.rows("sensor_readings", H0)["read_error"].notna().sum() == 1
    deliver(world, six.iloc[:5], version=2)  # the bad row left out
    result = world.run_hour(instance, H0, READINGS)
    after = world.rows("sensor_readings", H0)
    assert len(after) == 6
    assert after["read_error"].isna().all()
    assert (after["ts"] < pd.Timestamp("2026-01-02", tz="UTC")).all()
    assert metadata(result, "sensor_readings")["kept_rows_of_changed_files"] == 1


def test_a_re_upload_with_every_reading_keeps_nothing_extra(first):
    world, instance, six = first
    deliver(world, six, version=1)  # same rows, a new mtime
    result = world.run_hour(instance, H0, READINGS)
    assert len(readings(world)) == 6
    assert metadata(result, "sensor_readings")["kept_rows_of_changed_files"] == 0
    assert not [m for m in user_logs(instance, result) if "kept" in m]


def test_an_authoritative_landing_zone_takes_the_new_version(first, tmp_path, monkeypatch):
    world, instance, six = first
    authoritative_landing(tmp_path, monkeypatch)
    deliver(world, six.iloc[:3], version=1)
    result = world.run_hour(instance, H0, READINGS)
    assert len(readings(world)) == 3
    assert metadata(result, "sensor_readings")["kept_rows_of_changed_files"] == 0


def _ingested_once(tmp_path):
    """Hour 00 of a landing zone of one six-reading file, read and written as its partition."""
    landing, store = tmp_path / "landing", ParquetStore(tmp_path / "data")
    landing.mkdir()
    index = LandingIndex(tmp_path / "index.json")
    six = good_rows(6)
    six.to_parquet(landing / NAME, index=False)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    hour = (landing, start, start + timedelta(hours=1), H0, CONTRACT, index)
    con = connect()
    first = hour_readings(con, *hour, authoritative=False)
    store.write_from_duckdb("sensor_readings", H0, con, first.sql)
    index.record_hour(H0, first.considered, datetime.now(UTC))
    return con, hour, store.path("sensor_readings", H0), six


def test_an_hour_whose_files_did_not_change_is_read_as_before(tmp_path):
    con, hour, previous, _ = _ingested_once(tmp_path)
    again = hour_readings(con, *hour, previous=previous, authoritative=False)
    assert again.kept == {}
    assert again.sql == hour_readings(con, *hour, authoritative=False).sql


@pytest.mark.slow  # one Spark session
def test_spark_keeps_the_same_readings_of_a_truncated_re_upload(tmp_path):
    from refrig_assets.engines.spark import spark_session
    from refrig_assets.engines.spark_hourly import write_hour_sql

    con, hour, previous, six = _ingested_once(tmp_path)
    landing = hour[0]
    six.iloc[:3].to_parquet(landing / NAME, index=False)
    os.utime(landing / NAME, (1_767_229_200, 1_767_229_200))
    again = hour_readings(con, *hour, previous=previous, authoritative=False)
    assert again.kept == {NAME: 3}
    embedded = con.execute(again.sql).df()
    spark = spark_session("local[1]")
    try:
        on_spark = pd.read_parquet(
            write_hour_sql(spark, con, again.sql, tmp_path / "spark.parquet")
        )
    finally:
        spark.stop()
    order = ["device_id", "ts"]
    left = embedded.sort_values(order).reset_index(drop=True)
    right = on_spark.sort_values(order).reset_index(drop=True)
    assert len(left) == len(right) == 6
    for frame in (left, right):
        frame["ts"] = frame["ts"].dt.tz_convert("UTC")
        frame["received_at"] = frame["received_at"].dt.tz_convert("UTC")
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
