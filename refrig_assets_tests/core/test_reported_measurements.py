"""Without REFRIG_SENSORS a fleet's measurements are the ones its landed data has reported: a
record in the home's store that ingestion grows hour by hour, that concurrent runs merge, that
every process reads (noticing a newer one), and that REFRIG_SENSORS overrides."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import (
    absent_measurements,
    fleet_measurements,
    fleet_sensor_columns,
    measurement_columns,
    measurements_source,
    record_hour_measurements,
)
from refrig_assets.core.reported_measurements import (
    record_path,
    record_reported,
    recorded_measurements,
    reported_in_file,
)
from refrig_assets.core.settings import get_settings

READINGS = load_contract("sensor_readings")
EVERY = [c.name for c in measurement_columns(READINGS)]
TEMPERATURE_AND_DOOR = ["temperature_evaporator", "door_open"]
HOUR, LATER = "2026-01-01-00:00", "2026-01-01-05:00"


@pytest.fixture
def data_dir(refrig_home, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    return get_settings().data_dir


def readings_file(path, values: dict[str, list], row_group_size: int | None = None, **options):
    """A typed readings file: every measurement column, null where ``values`` has none."""
    rows = len(next(iter(values.values())))
    columns = {
        "device_id": pa.array([f"d{i}" for i in range(rows)]),
        **{
            name: pa.array(values.get(name, [None] * rows), type=pa.float64())
            for name in EVERY
            if name != "door_open"
        },
        "door_open": pa.array(values.get("door_open", [None] * rows), type=pa.bool_()),
    }
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size, **options)
    return path


def test_nothing_recorded_is_every_measurement_of_the_contract(data_dir):
    assert recorded_measurements(data_dir) is None
    assert fleet_measurements(READINGS) == EVERY
    assert measurements_source(READINGS) == "contract"


def test_the_fleet_has_the_measurements_its_hours_reported(data_dir, tmp_path):
    path = readings_file(
        tmp_path / "h.parquet",
        {"temperature_evaporator": [-18.0, None], "door_open": [None, True]},
    )

    assert record_hour_measurements(data_dir, path, HOUR, READINGS) == TEMPERATURE_AND_DOOR

    assert fleet_measurements(READINGS) == TEMPERATURE_AND_DOOR
    assert [c.name for c in fleet_sensor_columns(READINGS)] == ["temperature_evaporator"]
    assert "pressure_low_side" in absent_measurements(READINGS)
    assert measurements_source(READINGS) == "data"
    assert recorded_measurements(data_dir) == {"temperature_evaporator": HOUR, "door_open": HOUR}


def test_a_value_in_any_row_group_counts_and_files_without_null_counts_are_read(tmp_path):
    values = {"temperature_evaporator": [None] * 5 + [-18.0], "door_open": [None] * 6}
    grouped = readings_file(tmp_path / "g.parquet", values, row_group_size=2)
    bare = readings_file(tmp_path / "b.parquet", values, write_statistics=False)
    assert pq.ParquetFile(grouped).metadata.num_row_groups == 3
    assert pq.ParquetFile(bare).metadata.row_group(0).column(1).statistics is None

    assert reported_in_file(grouped, EVERY) == ["temperature_evaporator"]
    assert reported_in_file(bare, EVERY) == ["temperature_evaporator"]
    assert reported_in_file(grouped, ["humidity"]) == []  # not a column of the file


def test_the_record_only_grows_and_keeps_the_hour_that_first_reported(data_dir):
    record_reported(data_dir, TEMPERATURE_AND_DOOR, HOUR)
    record_reported(data_dir, ["temperature_evaporator"], LATER)  # door silent for an hour
    record_reported(data_dir, ["door_open", "current_compressor"], LATER)

    assert recorded_measurements(data_dir) == {
        "temperature_evaporator": HOUR,
        "door_open": HOUR,
        "current_compressor": LATER,
    }
    assert fleet_measurements(READINGS) == [
        "temperature_evaporator",
        "current_compressor",
        "door_open",
    ]


@pytest.mark.parametrize("reported_before", [True, False])
def test_a_sensor_the_whole_fleet_stops_reporting_is_still_flagged(
    data_dir, tmp_path, reported_before
):
    from support.quality_helpers import KEY, arrived_in_hour, good_rows, run_hour

    silent = "vibration_compressor"
    record_reported(data_dir, [n for n in EVERY if reported_before or n != silent], HOUR)
    landing = tmp_path / "landing"
    landing.mkdir()
    path = landing / "later.parquet"
    good_rows(5).drop(columns=[silent]).to_parquet(path, index=False)
    arrived_in_hour(path)

    _, result = run_hour(landing, registered=("dev-1",), key=KEY)

    # Reported before: the fleet's sensor, lost by the whole fleet. Never reported: not one.
    dropouts = result.sensor_flag_counts.get(("SENSOR_DROPOUT", silent), 0)
    assert (dropouts == 5) is reported_before
    assert (silent in fleet_measurements(READINGS)) is reported_before


def test_refrig_sensors_wins_over_the_record(data_dir, monkeypatch):
    record_reported(data_dir, EVERY, HOUR)
    monkeypatch.setenv("REFRIG_SENSORS", ",".join(TEMPERATURE_AND_DOOR))

    assert fleet_measurements(READINGS) == TEMPERATURE_AND_DOOR
    assert measurements_source(READINGS) == "REFRIG_SENSORS"


def test_another_process_recording_is_seen_by_a_process_that_read_the_record_before(data_dir):
    record_reported(data_dir, ["temperature_evaporator"], HOUR)
    assert fleet_measurements(READINGS) == ["temperature_evaporator"]

    # As another process writes it: a new file renamed over the record.
    path = record_path(data_dir)
    tmp = path.with_name(".other.tmp")
    tmp.write_text(
        json.dumps({"first_reported": {"temperature_evaporator": HOUR, "door_open": LATER}})
    )
    os.replace(tmp, path)

    assert fleet_measurements(READINGS) == TEMPERATURE_AND_DOOR


def test_a_home_of_its_own_has_a_record_of_its_own(data_dir, tmp_path, monkeypatch):
    record_reported(data_dir, ["temperature_evaporator"], HOUR)
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path / "other"))

    assert fleet_measurements(READINGS) == EVERY


RECORD_ONE = (
    "import sys; from pathlib import Path; "
    "from refrig_assets.core.reported_measurements import record_reported; "
    "record_reported(Path(sys.argv[1]), [sys.argv[2]], sys.argv[3])"
)


def test_concurrent_writers_each_add_their_measurements(data_dir):
    # One process per measurement, all started before any finishes: each one's addition kept.
    data_dir.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD_ONE, str(data_dir), name, HOUR], cwd=root, env=env
        )
        for name in EVERY
    ]

    assert [w.wait(timeout=120) for w in writers] == [0] * len(EVERY)
    assert set(recorded_measurements(data_dir)) == set(EVERY)
    assert not [p for p in data_dir.iterdir() if p.name.endswith(".tmp")]


def test_an_hour_without_readings_reports_nothing(data_dir, tmp_path):
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({name: pd.Series([], dtype="float64") for name in EVERY}).to_parquet(empty)

    assert record_hour_measurements(data_dir, empty, HOUR, READINGS) == []
    assert recorded_measurements(data_dir) is None
    assert fleet_measurements(READINGS) == EVERY


def test_the_quality_report_says_which_sensors_the_fleet_has_and_whence(data_dir, monkeypatch):
    from refrig_assets.quality.report import fleet_sensors

    assert fleet_sensors()["fleet_sensors_source"] == "contract"
    record_reported(data_dir, TEMPERATURE_AND_DOOR, HOUR)
    reported = fleet_sensors()
    monkeypatch.setenv("REFRIG_SENSORS", "temperature_evaporator")
    named = fleet_sensors()

    assert reported["fleet_sensors"] == TEMPERATURE_AND_DOOR
    assert reported["fleet_sensors_source"] == "data"
    assert len(reported["sensors_not_fitted"]) == len(EVERY) - 2
    assert named["fleet_sensors"] == ["temperature_evaporator"]
    assert named["fleet_sensors_source"] == "REFRIG_SENSORS"
