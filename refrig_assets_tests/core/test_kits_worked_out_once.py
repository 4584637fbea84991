"""The devices lacking each sensor are worked out once per version of the fleet-sensor record:
every call gives what the record says now (after each change of it, or of REFRIG_SENSORS), as
working it out from the record each time does, and a caller's changes stay its own."""

from __future__ import annotations

import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import (
    devices_lacking,
    fleet_measurements,
    measurement_columns,
)
from refrig_assets.core.reported_measurements import (
    record_device_kits,
    record_reported,
    recorded_device_kits,
)
from refrig_assets.core.settings import get_settings

READINGS = load_contract("sensor_readings")
EVERY = [c.name for c in measurement_columns(READINGS)]
HOUR = "2026-01-01-00:00"


def from_the_record() -> dict[str, list[str]]:
    """What the record says, worked out from it."""
    kits = recorded_device_kits(get_settings().data_dir)
    out = {}
    for name in fleet_measurements(READINGS) if kits else []:
        lacking = sorted(d for d, kit in kits.items() if name not in kit)
        if lacking:
            out[name] = lacking
    return out


@pytest.fixture
def data_dir(refrig_home, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    return get_settings().data_dir


def test_each_version_of_the_record_is_read(data_dir, monkeypatch):
    assert devices_lacking(READINGS) == {}
    record_reported(data_dir, EVERY, HOUR)
    assert devices_lacking(READINGS) == {}
    no_pressure = set(EVERY) - {"pressure_low_side", "pressure_high_side"}
    record_device_kits(data_dir, {f"dev-{i:03d}": no_pressure for i in range(150)})
    first = devices_lacking(READINGS)
    assert first == from_the_record() and len(first["pressure_low_side"]) == 150
    first["pressure_low_side"].clear()  # the caller's copy
    assert devices_lacking(READINGS) == from_the_record()
    record_device_kits(data_dir, {"dev-007": set(EVERY), "dev-999": set(EVERY) - {"door_open"}})
    again = devices_lacking(READINGS)
    assert again == from_the_record()
    assert "dev-007" not in again["pressure_low_side"] and again["door_open"] == ["dev-999"]
    monkeypatch.setenv("REFRIG_SENSORS", ",".join(n for n in EVERY if n != "door_open"))
    assert devices_lacking(READINGS) == from_the_record() and "door_open" not in from_the_record()
