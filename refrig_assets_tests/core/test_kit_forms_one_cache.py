"""Every form of the devices lacking each sensor (the lists, the sets of ``lacking_among``, the
table to join and the kit-size SQL) comes from one working-out per version of the fleet-sensor
record: asked in any order, before and after each change of the record or of REFRIG_SENSORS,
each form says what the record says now."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import (
    devices_lacking,
    fleet_measurements,
    kit_sizes_sql,
    kit_table,
    lacking_among,
    lacks_column,
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
ASKED = np.array(["dev-000", "dev-007", "dev-999", "other", "dev-007"], dtype=object)
SIZED = ["pressure_low_side", "pressure_high_side", "door_open"]


def from_the_record() -> dict[str, set[str]]:
    """Fleet sensor -> the devices lacking it, worked out from the record."""
    kits = recorded_device_kits(get_settings().data_dir)
    out = {}
    for name in fleet_measurements(READINGS) if kits else []:
        lacking = {d for d, kit in kits.items() if name not in kit}
        if lacking:
            out[name] = lacking
    return out


def forms_agree_with_the_record() -> None:
    expected = from_the_record()
    assert {s: set(ids) for s, ids in devices_lacking(READINGS).items()} == expected
    among = lacking_among(ASKED, READINGS)
    assert set(among) == set(expected)
    for name, flags in among.items():
        assert flags.tolist() == [d in expected[name] for d in ASKED]
    table = kit_table(READINGS).to_pylist()
    assert (
        {r["device_id"] for r in table} == set().union(*expected.values())
        if expected
        else not table
    )
    for row in table:
        for name in expected:
            assert row[lacks_column(name)] == (row["device_id"] in expected[name])
    sizes = kit_sizes_sql(SIZED, READINGS)
    lacked = {
        d: sum(d in expected.get(s, set()) for s in SIZED)
        for d in set().union(set(), *expected.values())
    }
    want = {d: max(1, len(SIZED) - n) for d, n in lacked.items() if n}
    got = dict(duckdb.sql(sizes).fetchall()) if sizes is not None else {}
    assert got == want


@pytest.fixture
def data_dir(refrig_home, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    return get_settings().data_dir


def test_every_form_follows_each_version_of_the_record(data_dir, monkeypatch):
    forms_agree_with_the_record()  # nothing recorded
    record_reported(data_dir, EVERY, HOUR)
    forms_agree_with_the_record()
    no_pressure = set(EVERY) - {"pressure_low_side", "pressure_high_side"}
    record_device_kits(data_dir, {f"dev-{i:03d}": no_pressure for i in range(150)})
    forms_agree_with_the_record()
    record_device_kits(data_dir, {"dev-007": set(EVERY), "dev-999": set(EVERY) - {"door_open"}})
    forms_agree_with_the_record()
    monkeypatch.setenv("REFRIG_SENSORS", ",".join(n for n in EVERY if n != "door_open"))
    forms_agree_with_the_record()
    monkeypatch.delenv("REFRIG_SENSORS")
    forms_agree_with_the_record()


def test_the_forms_are_made_once_per_version(data_dir):
    record_reported(data_dir, EVERY, HOUR)
    record_device_kits(data_dir, {"dev-001": set(EVERY) - {"door_open"}})
    assert kit_table(READINGS) is kit_table(READINGS)
    assert kit_sizes_sql(SIZED, READINGS) is kit_sizes_sql(SIZED, READINGS)
    first = kit_table(READINGS)
    record_device_kits(data_dir, {"dev-002": set(EVERY) - {"door_open"}})
    assert kit_table(READINGS) is not first
    assert kit_table(READINGS).column("device_id").to_pylist() == ["dev-001", "dev-002"]
