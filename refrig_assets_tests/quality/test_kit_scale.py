"""Sensor kits at fleet scale: quality looks a row's device up among the devices whose kit lacks a
sensor by a join, not by testing it against their literal ids, so a fleet naming 10,000 such
devices is cleaned within a small memory limit, and every way of cleaning an hour (from its file,
in shards, from a table, sorted first, with the flags joined) flags the same dropouts: a missing
value of a sensor the device's kit has, never of one it lacks."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.quality_helpers import HOUR as START
from support.quality_helpers import KEY, arrived_in_hour, good_rows

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.device_ranges import device_cuts
from refrig_assets.core.duck import connect, sql_str
from refrig_assets.core.fleet_sensors import (
    devices_lacking,
    fleet_sensor_columns,
    measurement_columns,
)
from refrig_assets.core.reported_measurements import record_device_kits, record_reported
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.rules import clean_hour
from refrig_assets.quality.shards import clean_hour_in_shards

READINGS = load_contract("sensor_readings")
EVERY = [c.name for c in measurement_columns(READINGS)]
PRESSURES = {"pressure_low_side", "pressure_high_side"}
DEVICES = ("dev-1", "dev-2", "dev-3", "dev-4")


@pytest.fixture
def data_dir(refrig_home, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    return get_settings().data_dir


def record_kits(data_dir, others: int) -> None:
    """The fleet reports every measurement; dev-2 and dev-4 (and ``others`` devices not in the
    hour) have no pressure transmitters."""
    record_reported(data_dir, EVERY, KEY)
    lacking = set(EVERY) - PRESSURES
    kits = {f"cohort-{i:06d}": lacking for i in range(others)}
    record_device_kits(data_dir, {**kits, "dev-2": lacking, "dev-4": lacking, "dev-1": set(EVERY)})
    assert len(devices_lacking(READINGS)["pressure_low_side"]) == others + 2


def typed_hour(data_dir, tmp_path) -> tuple[ParquetStore, object]:
    """The typed readings of an hour landed in two files, the second holding later copies of
    some readings (one copy with the pressures its kept reading lacks): dev-1 misses one
    pressure, dev-2 (no transmitters) every pressure and two temperatures, dev-3 loses its
    pressures (a dropout every reading), dev-4 (no transmitters) nothing else."""
    frames = []
    for n, device in enumerate(DEVICES):
        rows = good_rows(12, device=device, value=10.0 + n)
        if device in ("dev-2", "dev-3", "dev-4"):
            rows = rows.assign(**dict.fromkeys(PRESSURES, None))
        frames.append(rows)
    first = pd.concat(frames, ignore_index=True)
    first.loc[2, "pressure_low_side"] = None  # dev-1
    first.loc[[15, 20], "temperature_evaporator"] = None  # dev-2
    first.loc[40, "current_compressor"] = None  # dev-4
    copies = first.iloc[[14, 15, 16, 30]].copy()  # dev-2's 3rd to 5th readings, one of dev-3
    copies["pressure_low_side"] = 3.0
    # another condenser value: the copies conflict with the readings kept, so they stay
    # duplicates (copies that only add values are folded, see test_per_sensor_copies_folded)
    copies["temperature_condenser"] += 1.0
    copies.loc[copies.index[0], "temperature_evaporator"] = None
    landing = tmp_path / "landing"
    landing.mkdir()
    first.to_parquet(landing / "a.parquet", index=False)
    copies.to_parquet(landing / "b.parquet", index=False)
    arrived_in_hour(landing / "a.parquet", landing / "b.parquet")
    store = ParquetStore(tmp_path / "data")
    with connect() as con:
        hour = hour_readings(
            con, landing, START, START + pd.Timedelta(hours=1), KEY, READINGS,
            LandingIndex(tmp_path / "index.json"),
        )  # fmt: skip
        store.write_from_duckdb("sensor_readings", KEY, con, hour.sql)
    path = store.path("sensor_readings", KEY)
    # in device order as ingestion writes an hour, in row groups of a few devices' rows (the
    # hour is then cut into device ranges)
    order = [(k, "ascending") for k in ("device_id", "ts", "received_at", "source_file")]
    order.append(("source_row", "ascending"))
    pq.write_table(pq.read_table(path).sort_by(order), path, row_group_size=12)
    assert device_cuts(path, 2)
    return store, path


def expected(typed) -> tuple[set, int, dict]:
    """From the typed rows: the kept readings with a dropout (a missing value of a sensor the
    device's kit has), their count and the count per sensor."""
    rows = pq.read_table(typed).to_pandas()
    rows = rows[rows["source_row"] >= 0].sort_values(["device_id", "ts", "source_file"])
    kept = rows.drop_duplicates(["device_id", "ts"], keep="first")
    lacking = {s: set(ids) for s, ids in devices_lacking(READINGS).items()}
    per_sensor = {}
    dropout = pd.Series(False, index=kept.index)
    for c in fleet_sensor_columns(READINGS):
        has = ~kept["device_id"].isin(lacking.get(c.name, set()))
        missing = kept[c.name].isna() & has
        per_sensor[c.name] = int(missing.sum())
        dropout |= missing
    flagged = set(zip(kept["device_id"][dropout], kept["ts"][dropout], strict=True))
    return flagged, int(dropout.sum()), per_sensor


def dropouts(clean: pd.DataFrame) -> set:
    hit = clean["quality_flags"].fillna("").str.contains("SENSOR_DROPOUT")
    return set(zip(clean["device_id"][hit], clean["ts"][hit], strict=True))


def cleaned_every_way(store: ParquetStore, typed, tmp_path) -> dict:
    """The hour cleaned by each path of the quality step: clean rows (in the order written)
    and the result."""
    registered = pa.table({"device_id": pa.array(DEVICES, pa.string())})
    out = {}
    for shards in (1, 2):
        with connect() as con:
            path, result = clean_hour_in_shards(
                con, store, KEY, typed, READINGS, registered, shards=shards,
                clean_dataset=f"clean_{shards}", tails_dataset=f"tails_{shards}", ranges=2,
            )  # fmt: skip
        out[f"file in {shards} shards"] = (pd.read_parquet(path), result)
    shuffled = tmp_path / "shuffled.parquet"
    table = pq.read_table(typed)
    pq.write_table(table.take(list(range(table.num_rows))[::-1]), shuffled)
    cuts = device_cuts(typed, 2)
    ways = {
        "table": (typed, {}),
        "table in ranges": (typed, {"cuts": cuts}),
        "sorted first": (shuffled, {}),
        "flags joined": (typed, {"flags_in_place": False}),
    }
    for name, (path, options) in ways.items():
        with connect() as con:
            source = f"read_parquet({sql_str(str(path))})"
            clean_sql, result = clean_hour(con, source, READINGS, registered, **options)
            out[name] = (con.execute(clean_sql).df(), result)
    return out


def test_every_way_of_cleaning_an_hour_flags_the_dropouts_of_each_device_s_own_kit(
    data_dir, tmp_path
):
    record_kits(data_dir, others=300)
    store, typed = typed_hour(data_dir, tmp_path)
    flagged, count, per_sensor = expected(typed)
    minute = pd.Timedelta(minutes=1)
    assert {("dev-2", START + 3 * minute), ("dev-4", START + 4 * minute)} <= flagged
    assert ("dev-2", START + 2 * minute) not in flagged  # its copy's missing value is dropped
    results = cleaned_every_way(store, typed, tmp_path)
    first_name, (first_clean, first_result) = next(iter(results.items()))
    key = ["device_id", "ts"]
    for name, (clean, result) in results.items():
        assert dropouts(clean) == flagged, name
        assert result.flag_counts["SENSOR_DROPOUT"] == count, name
        for sensor, n in per_sensor.items():
            assert result.sensor_flag_counts[("SENSOR_DROPOUT", sensor)] == n, (name, sensor)
        assert result.flag_counts == first_result.flag_counts, name
        assert result.quarantine.equals(first_result.quarantine), name
        assert result.sensor_values_present == first_result.sensor_values_present, name
        columns = list(first_clean.columns)
        same = clean[columns].sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(
            same, first_clean.sort_values(key, ignore_index=True), check_dtype=False
        )
    for shards in ("file in 1 shards", "file in 2 shards"):
        clean = results[shards][0]  # written in (device_id, ts) order
        assert clean.equals(clean.sort_values(key, ignore_index=True)), shards


def test_ten_thousand_devices_without_pressures_are_cleaned_within_a_small_memory_limit(
    data_dir, tmp_path
):
    """A membership test of 10,000 literal ids in the device pass ran out of 1.9 GiB."""
    record_kits(data_dir, others=12_000)
    store, typed = typed_hour(data_dir, tmp_path)
    flagged, count, _ = expected(typed)
    registered = pa.table({"device_id": pa.array(DEVICES, pa.string())})
    with connect() as con:
        con.execute("SET memory_limit = '256MB'")
        path, result = clean_hour_in_shards(
            con, store, KEY, typed, READINGS, registered, budget_held=True, ranges=2
        )
    assert dropouts(pd.read_parquet(path)) == flagged
    assert result.flag_counts["SENSOR_DROPOUT"] == count


@pytest.fixture(scope="module")
def spark():
    from refrig_assets.engines.spark import spark_session

    session = spark_session("local[1]")
    yield session
    session.stop()


def test_spark_flags_the_dropouts_of_each_device_s_own_kit(data_dir, tmp_path, spark):
    from refrig_assets.engines.spark_hourly import clean_hour_on_spark

    record_kits(data_dir, others=300)
    _, typed = typed_hour(data_dir, tmp_path)
    flagged, count, per_sensor = expected(typed)
    registered = pa.table({"device_id": pa.array(DEVICES, pa.string())})
    quality = clean_hour_on_spark(spark, typed, READINGS, registered)
    try:
        clean = quality.clean.toPandas()
        result = quality.result
    finally:
        quality.close()
    clean["ts"] = pd.to_datetime(clean["ts"], utc=True)
    assert dropouts(clean) == flagged
    assert result.flag_counts["SENSOR_DROPOUT"] == count
    for sensor, n in per_sensor.items():
        assert result.sensor_flag_counts[("SENSOR_DROPOUT", sensor)] == n, sensor
