"""Sensor kits differ per device: a device that has never reported a sensor the rest of the fleet
reports (a cohort without pressure transmitters) has no dropout of it, hour after hour, while a
device that has reported it and loses it is still flagged."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.quality_helpers import HOUR as START
from support.quality_helpers import KEY, arrived_in_hour, good_rows, run_hour

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect
from refrig_assets.core.fleet_sensors import (
    devices_lacking,
    measurement_columns,
    record_hour_measurements,
)
from refrig_assets.core.reported_measurements import (
    columns_with_nulls,
    record_path,
    record_reported,
    recorded_device_kits,
)
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.shards import clean_hour_in_shards

READINGS = load_contract("sensor_readings")
EVERY = [c.name for c in measurement_columns(READINGS)]
PRESSURE = "pressure_low_side"
HOUR, LATER = "2026-01-01-00:00", "2026-01-01-01:00"


@pytest.fixture
def data_dir(refrig_home, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    return get_settings().data_dir


def typed_hour(path, kits: dict[str, set[str]]):
    """A typed readings file with two rows per device: each measurement of its kit set."""
    devices = [d for d in kits for _ in range(2)]
    columns = {"device_id": pa.array(devices, pa.string())}
    for name in EVERY:
        kind = pa.bool_() if name == "door_open" else pa.float64()
        value = False if name == "door_open" else 1.0
        columns[name] = pa.array([value if name in kits[d] else None for d in devices], kind)
    pq.write_table(pa.table(columns), path)
    return path


def test_a_file_without_gaps_needs_no_per_device_scan(data_dir, tmp_path):
    full = typed_hour(tmp_path / "full.parquet", {"a": set(EVERY), "b": set(EVERY)})
    assert columns_with_nulls(full, EVERY) == []
    record_hour_measurements(data_dir, full, HOUR, READINGS)
    assert recorded_device_kits(data_dir) == {}
    holed = typed_hour(tmp_path / "holed.parquet", {"a": set(EVERY), "b": set(EVERY) - {PRESSURE}})
    assert columns_with_nulls(holed, EVERY) == [PRESSURE]


def test_kits_name_only_the_devices_that_lack_a_fleet_sensor_until_they_report_it(
    data_dir, tmp_path
):
    lacking = set(EVERY) - {PRESSURE}
    first = typed_hour(tmp_path / "h0.parquet", {"a": set(EVERY), "b": lacking})
    record_hour_measurements(data_dir, first, HOUR, READINGS)
    assert recorded_device_kits(data_dir) == {"b": sorted(lacking)}
    assert devices_lacking(READINGS) == {PRESSURE: ["b"]}
    # The fleet-level record is kept alongside (and record_reported keeps the kits).
    record_reported(data_dir, EVERY, LATER)
    assert json.loads(record_path(data_dir).read_text())["by_device"] == {"b": sorted(lacking)}
    # b reports its pressure in a later hour (a file without gaps): it has it from then on.
    later = typed_hour(tmp_path / "h1.parquet", {"a": set(EVERY), "b": set(EVERY)})
    record_hour_measurements(data_dir, later, LATER, READINGS)
    assert recorded_device_kits(data_dir) == {"b": sorted(EVERY)}
    assert devices_lacking(READINGS) == {}


def test_a_device_that_reported_a_sensor_the_hour_before_has_lost_it_not_lacked_it(
    data_dir, tmp_path
):
    # Hour 0 has no gap, so no kit is recorded; in hour 1 b's pressure is gone all hour (a
    # dropout beginning at the end of hour 0) and c, new this hour, has no transmitter.
    every = {"a": set(EVERY), "b": set(EVERY)}
    first = typed_hour(tmp_path / "h0.parquet", every)
    record_hour_measurements(data_dir, first, HOUR, READINGS)
    lacking = set(EVERY) - {PRESSURE}
    later = typed_hour(tmp_path / "h1.parquet", {**every, "b": lacking, "c": lacking})
    record_hour_measurements(data_dir, later, LATER, READINGS, previous=first)
    assert devices_lacking(READINGS) == {PRESSURE: ["c"]}


def kit_hour(data_dir, tmp_path):
    """The landing of one hour after an hour that recorded the kits: dev-1 and dev-3 have the
    pressure, dev-2 has no transmitter. This hour dev-1 misses one reading's pressure, dev-2
    (never had it) and dev-3 (lost it) every one."""
    kits = {"dev-1": set(EVERY), "dev-2": set(EVERY) - {PRESSURE}, "dev-3": set(EVERY)}
    record_hour_measurements(data_dir, typed_hour(tmp_path / "h0.parquet", kits), HOUR, READINGS)
    landing = tmp_path / "landing"
    landing.mkdir()
    one = good_rows(5, device="dev-1")
    one.loc[2, PRESSURE] = None
    two = good_rows(5, device="dev-2").assign(**{PRESSURE: None})
    three = good_rows(5, device="dev-3").assign(**{PRESSURE: None})
    path = landing / "hour.parquet"
    pd.concat([one, two, three], ignore_index=True).to_parquet(path, index=False)
    arrived_in_hour(path)
    return landing


EXPECTED = {"dev-1": 1, "dev-2": 0, "dev-3": 5}
DEVICES = ("dev-1", "dev-2", "dev-3")


def dropouts_per_device(clean: pd.DataFrame) -> dict[str, int]:
    dropout = clean["quality_flags"].fillna("").str.contains("SENSOR_DROPOUT")
    return dropout.groupby(clean["device_id"]).sum().to_dict()


def test_a_sensor_a_device_never_had_is_no_dropout_and_a_lost_one_still_is(data_dir, tmp_path):
    clean, result = run_hour(kit_hour(data_dir, tmp_path), registered=DEVICES, key=KEY)

    assert dropouts_per_device(clean) == EXPECTED
    assert result.flag_counts["SENSOR_DROPOUT"] == 6
    # The quality report's per-sensor dropout counts only the devices that have the sensor.
    assert result.sensor_flag_counts[("SENSOR_DROPOUT", PRESSURE)] == 6


@pytest.mark.parametrize("shards", [1, 2])
def test_the_hour_cleaned_from_its_file_in_shards_skips_the_same_devices(
    data_dir, tmp_path, shards
):
    landing = kit_hour(data_dir, tmp_path)
    store = ParquetStore(tmp_path / "data")
    con = connect()
    try:
        hour = hour_readings(
            con, landing, START, START + pd.Timedelta(hours=1), KEY, READINGS,
            LandingIndex(tmp_path / "index.json"),
        )  # fmt: skip
        store.write_from_duckdb("sensor_readings", KEY, con, hour.sql)
        registered = pa.table({"device_id": pa.array(DEVICES, pa.string())})
        path, result = clean_hour_in_shards(
            con, store, KEY, store.path("sensor_readings", KEY), READINGS, registered,
            shards=shards,
        )  # fmt: skip
    finally:
        con.close()

    assert dropouts_per_device(pd.read_parquet(path)) == EXPECTED
    assert result.flag_counts["SENSOR_DROPOUT"] == 6
    assert result.sensor_flag_counts[("SENSOR_DROPOUT", PRESSURE)] == 6


def test_a_device_s_completeness_is_measured_against_its_own_kit(data_dir, tmp_path):
    from refrig_assets.core.fleet_sensors import kit_size_sql

    sensors = [c.name for c in READINGS.columns_with_role("sensor")]
    assert kit_size_sql(sensors, READINGS) == str(len(sensors))  # nothing recorded: all
    kits = {"full": set(EVERY), "few": {"temperature_evaporator", "door_open"}}
    record_hour_measurements(data_dir, typed_hour(tmp_path / "h0.parquet", kits), HOUR, READINGS)
    con = connect()
    try:
        size = kit_size_sql(sensors, READINGS, device="d")
        got = con.execute(
            f"SELECT d, {size} FROM (VALUES ('full'), ('few'), ('new')) t(d) ORDER BY d"
        ).fetchall()
    finally:
        con.close()
    assert dict(got) == {"few": 1, "full": len(sensors), "new": len(sensors)}


def test_the_quality_report_counts_the_devices_without_each_fleet_sensor(data_dir, tmp_path):
    from refrig_assets.quality.report import fleet_sensors, format_report

    assert fleet_sensors()["devices_without_sensor"] == {}
    kits = {"a": set(EVERY), "b": set(EVERY) - {PRESSURE}, "c": {"temperature_evaporator"}}
    record_hour_measurements(data_dir, typed_hour(tmp_path / "h0.parquet", kits), HOUR, READINGS)
    without = fleet_sensors()["devices_without_sensor"]
    assert without[PRESSURE] == 2 and without["door_open"] == 1
    assert "temperature_evaporator" not in without
    report = {
        "partition": HOUR, "rows_read": 0, "rows_clean": 0, "rows_quarantined": 0,
        "completeness": 1.0, "quarantined_by_rule": {}, "quarantined_by_file": [],
        "flag_rates": {}, "flag_rates_by_sensor": {}, "freshness": {}, **fleet_sensors(),
    }  # fmt: skip
    assert f"{PRESSURE} 2" in format_report(report)
