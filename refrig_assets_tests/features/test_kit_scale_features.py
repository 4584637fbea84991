"""A device's completeness is measured against its own sensor kit by a join with the devices
lacking sensors, not a membership test of their literal ids: a fleet naming 12,000 of them
computes its windows within a small memory limit, for devices named alone or as a range of hours
names them ("<hour>" + chr(31) + "<id>"), and Spark computes the same windows."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import measurement_columns
from refrig_assets.core.reported_measurements import record_device_kits, record_reported
from refrig_assets.core.settings import get_settings
from refrig_assets.features.windows import feature_sql

READINGS = load_contract("sensor_readings")
EVERY = [c.name for c in measurement_columns(READINGS)]
PRESSURES = {"pressure_low_side", "pressure_high_side"}
KEY = "2026-01-01-00:00"


@pytest.fixture
def kits(refrig_home, monkeypatch):
    """The fleet reports every measurement; ``bare`` and 12,000 devices not in the data have
    no pressure transmitters, ``logger`` has only its coil temperature."""
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    data_dir = get_settings().data_dir
    record_reported(data_dir, EVERY, KEY)
    lacking = set(EVERY) - PRESSURES
    cohort = {f"cohort-{i:06d}": lacking for i in range(12_000)}
    logger = {"temperature_evaporator", "door_open"}
    record_device_kits(data_dir, {**cohort, "bare": lacking, "logger": logger, "full": set(EVERY)})


def clean_hour(prefix: str = "") -> pd.DataFrame:
    """A minute's reading of each sensor of each device's kit for 30 minutes; ``full`` misses
    a third of its pressures, ``bare`` a third of its evaporator temperatures."""
    ts = pd.date_range("2026-01-01", periods=30, freq="1min", tz="UTC")
    kit_of = {
        "full": set(EVERY),
        "bare": set(EVERY) - PRESSURES,
        "logger": {"temperature_evaporator", "door_open"},
    }
    rows = []
    for device, kit in kit_of.items():
        for k, t in enumerate(ts):
            row = {"device_id": f"{prefix}{device}", "ts": t.as_unit("us")}
            for name in EVERY:
                value = (k % 2 == 0) if name == "door_open" else 1.0 + k * 0.01
                row[name] = value if name in kit else None
            if k % 3 == 0:
                row["pressure_low_side" if device == "full" else "temperature_evaporator"] = None
            rows.append(row)
    return pd.DataFrame(rows).assign(quality_mask=0, quality_flags="")


def completeness(frame: pd.DataFrame) -> dict:
    got = frame.groupby("device_id")["sensor_completeness"].mean()
    return {k.rsplit(chr(31), 1)[-1]: round(v, 6) for k, v in got.items()}


# full: 7 sensors, 10 of 210 values a window missing; bare: 5 sensors, 5 of 75 missing;
# logger: its 1 sensor, 5 of 15 missing
EXPECTED = {"bare": round(70 / 75, 6), "full": round(100 / 105, 6), "logger": round(10 / 15, 6)}


@pytest.mark.parametrize("prefix", ["", "2026-01-01-00:00" + chr(31)])
def test_completeness_against_each_kit_within_a_small_memory_limit(kits, prefix):
    """A membership test of 10,000 literal ids in the windows' completeness ran out of 2 GB."""
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '256MB'")
        con.register("clean", clean_hour(prefix))
        out = con.execute(feature_sql("clean", window_min=15, cadence_seconds=60)).df()
    finally:
        con.close()
    assert completeness(out) == EXPECTED


@pytest.fixture(scope="module")
def spark():
    from refrig_assets.engines.spark import spark_session

    session = spark_session("local[1]")
    yield session
    session.stop()


def test_spark_measures_each_kit_as_the_embedded_engine(kits, spark):
    clean = clean_hour()
    spark.createDataFrame(clean).createOrReplaceTempView("clean_kits")
    sql = feature_sql("clean_kits", window_min=15, cadence_seconds=60, dialect="spark")
    on_spark = spark.sql(sql).toPandas()
    assert completeness(on_spark) == EXPECTED
