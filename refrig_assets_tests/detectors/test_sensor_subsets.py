"""Any subset of sensors: a cold-chain fleet that reports only the evaporator temperature and
the door contact (REFRIG_SENSORS) is read, cleaned and scored on what it has, and the detector
finds a total loss of cooling without alarming on healthy devices."""

import pandas as pd
import pytest
from support.fleet_world import scored, simulated_fleet

from refrig_assets.core.contracts import ContractError, load_contract
from refrig_assets.core.fleet_sensors import absent_measurements, fleet_measurements
from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.streaming.config import load_streaming_settings

TEMPERATURE_AND_DOOR = ["temperature_evaporator", "door_open"]


@pytest.fixture
def temperature_and_door(monkeypatch):
    monkeypatch.setenv("REFRIG_SENSORS", ",".join(TEMPERATURE_AND_DOOR))
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "60")


def test_the_fleet_names_its_sensors_and_only_measurements_may_be_left_out(monkeypatch):
    readings = load_contract("sensor_readings")
    monkeypatch.setenv("REFRIG_SENSORS", "door_open, temperature_evaporator")
    assert fleet_measurements(readings) == TEMPERATURE_AND_DOOR
    assert "pressure_low_side" in absent_measurements(readings)
    monkeypatch.setenv("REFRIG_SENSORS", "humidity")
    with pytest.raises(ContractError, match="humidity"):
        fleet_measurements(readings)


def test_rules_and_detector_inputs_need_only_the_sensors_the_fleet_has(temperature_and_door):
    rules = load_streaming_settings().rules
    assert "total_cooling_loss" in {r.name for r in rules}
    assert {r.sensor for r in rules} <= set(TEMPERATURE_AND_DOOR)  # none on absent sensors
    for model_id in ("statistical_baseline", "isolation_forest"):
        detector = build_detector(load_model_config(model_id))
        # Without the compressor current there is no running state: the plain mean is used.
        assert detector.feature_columns == ["temperature_evaporator_mean"]
        assert detector.context_columns == []


def test_a_temperature_and_door_fleet_alerts_on_a_total_loss_of_cooling(
    tmp_path, temperature_and_door
):
    size = {"devices": 20, "hours": 12, "cadence_seconds": 60, "seed": 5}
    normal = simulated_fleet(tmp_path / "normal", faults=False, keep=TEMPERATURE_AND_DOOR, **size)
    fleet = simulated_fleet(tmp_path / "faulty", keep=TEMPERATURE_AND_DOOR, **size)
    # Six absent sensors are not a dropout: readings are complete for what the fleet has.
    assert all(r.flag_counts["SENSOR_DROPOUT"] == 0 for r in fleet.quality)
    assert all(r.rows_quarantined == 0 for r in fleet.quality)
    assert fleet.features["sensor_completeness"].min() == pytest.approx(1.0)

    flags = scored(fleet, "statistical_baseline", normal)
    flags = flags[flags["anomaly_flag"]]
    labels = fleet.labels
    loss = labels[labels["fault_type"] == "total_cooling_loss"].iloc[0]
    caught = flags[
        (flags["device_id"] == loss["device_id"]) & (flags["window_end"] > loss["onset"])
    ]
    assert len(caught)
    assert caught["window_end"].min() - loss["onset"] <= pd.Timedelta(hours=1)
    healthy = flags[~flags["device_id"].isin(labels["device_id"])]
    assert healthy.empty


def test_the_streaming_path_reads_a_file_without_the_running_sensor(tmp_path, temperature_and_door):
    from refrig_assets.core.duck import connect
    from refrig_assets.streaming.tick import read_readings

    landing = tmp_path / "landing"
    landing.mkdir()
    frame = pd.DataFrame(
        {
            "device_id": ["d1", "d1"],
            "ts": pd.to_datetime(["2026-01-01T00:00Z", "2026-01-01T00:01Z"]),
            "temperature_evaporator": [-18.0, -17.5],
            "door_open": [False, True],
        }
    )
    frame.to_parquet(landing / "temp_door.parquet")
    settings = load_streaming_settings()
    table, rejection = read_readings(
        connect(),
        landing / "temp_door.parquet",
        landing,
        load_contract("sensor_readings"),
        settings.sensors,
    )
    assert rejection is None
    read = table.to_pandas()
    assert read["temperature_evaporator"].tolist() == [-18.0, -17.5]
    assert read[settings.running_sensor].isna().all()
