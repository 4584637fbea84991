"""A simulated fleet with only some of the contract's sensors: its files hold only those, and
it is given only faults those sensors can show (each fault type's signature in
``FAULT_SIGNATURES``), so an evaluation never scores a fleet on a fault it cannot see."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.contracts import ContractError, load_contract
from refrig_assets.core.fleet_sensors import measurement_columns
from refrig_assets.simulator import FAULT_TYPES, FleetSimulator, SimulationConfig
from refrig_assets.simulator.faults import ALL_SENSORS, FAULT_SIGNATURES, observable

MEASUREMENTS = [c.name for c in measurement_columns(load_contract("sensor_readings"))]
TEMPERATURE_AND_DOOR = ("temperature_evaporator", "door_open")
# Long enough for every fault type (a defrost failure needs 36 h), many faults per type.
MIX = dict(devices=120, hours=40, seed=5, fault_fraction=0.3, operational_fault_fraction=0.2)


def test_every_fault_type_names_the_measurements_it_shows_on():
    assert set(FAULT_SIGNATURES) == set(FAULT_TYPES)
    for fault, alternatives in FAULT_SIGNATURES.items():
        assert alternatives, fault
        for sensor in (s for alternative in alternatives for s in alternative):
            assert sensor in MEASUREMENTS or sensor == ALL_SENSORS, (fault, sensor)


def test_a_fleet_with_every_sensor_gets_the_same_faults_as_before():
    every = FleetSimulator(SimulationConfig(**MIX, sensors=tuple(MEASUREMENTS))).labels()
    default = FleetSimulator(SimulationConfig(**MIX)).labels()

    pd.testing.assert_frame_equal(every, default)
    assert set(default["fault_type"]) == set(FAULT_TYPES)


@pytest.mark.parametrize(
    "sensors",
    [
        TEMPERATURE_AND_DOOR,
        ("temperature_evaporator", "current_compressor", "ambient_temperature"),
        ("pressure_low_side", "pressure_high_side"),
        ("vibration_compressor",),
    ],
)
def test_a_sensor_subset_gets_only_faults_it_can_show_and_files_of_its_sensors(sensors):
    sim = FleetSimulator(SimulationConfig(**MIX, sensors=sensors))
    labels = sim.labels()

    assert len(labels) > 0
    shown = {f for f in FAULT_TYPES if observable(f, sensors)}
    assert set(labels["fault_type"]) == shown
    assert set(labels["sensor"].dropna()) <= {*sensors, ALL_SENSORS}
    assert sim.hour(0).columns.tolist() == ["device_id", "ts", *sensors]


def test_a_temperature_and_door_fleet_has_cooling_losses_and_doors_left_open_only():
    labels = FleetSimulator(SimulationConfig(**MIX, sensors=TEMPERATURE_AND_DOOR)).labels()
    kinds = set(labels["fault_type"])

    assert {"total_cooling_loss", "door_left_open"} <= kinds
    # Their signatures need the compressor current or the suction pressure.
    assert not kinds & {"site_power_loss", "refrigerant_leak", "short_cycling"}


def test_a_sensor_the_contract_does_not_have_is_refused():
    with pytest.raises(ContractError, match="oil_pressure"):
        FleetSimulator(
            SimulationConfig(devices=2, sensors=("temperature_evaporator", "oil_pressure"))
        )


def test_refrig_simulate_writes_the_fleet_of_refrig_sensors(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path))
    monkeypatch.setenv("REFRIG_SENSORS", ",".join(TEMPERATURE_AND_DOOR))
    for name in ("REFRIG_LANDING_DIR", "REFRIG_DEVICE_REGISTRY", "REFRIG_LABELS"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(
        app, ["simulate", "--devices", "20", "--hours", "3", "--fault-fraction", "0.3"]
    )

    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "landing").rglob("*.parquet"))
    assert len(files) == 3
    assert pd.read_parquet(files[0]).columns.tolist() == ["device_id", "ts", *TEMPERATURE_AND_DOOR]
    labels = pd.read_parquet(tmp_path / "reference" / "labels.parquet")
    assert set(labels["fault_type"]) == {"total_cooling_loss", "door_left_open"}


def test_refrig_simulate_writes_every_sensor_into_a_home_that_recorded_fewer(tmp_path, monkeypatch):
    # The sensors a home's earlier data reported are that fleet's, not the next simulation's.
    from refrig_assets.core.reported_measurements import record_reported

    monkeypatch.setenv("REFRIG_HOME", str(tmp_path))
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    for name in (
        "REFRIG_LANDING_DIR",
        "REFRIG_DEVICE_REGISTRY",
        "REFRIG_LABELS",
        "REFRIG_DATA_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    record_reported(tmp_path / "data", TEMPERATURE_AND_DOOR, "2026-01-01-00:00")

    result = CliRunner().invoke(app, ["simulate", "--devices", "4", "--hours", "1"])

    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "landing").rglob("*.parquet"))
    assert set(MEASUREMENTS) <= set(pd.read_parquet(files[0]).columns)
