"""The in-memory quality rules of a small request give exactly the batch path's clean rows and
feature windows (``clean_hour`` + ``feature_sql``), and every request the batch path would
quarantine a row of is left to the batch path, which names the violation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect
from refrig_assets.quality.rules import decode_mask
from refrig_assets.serving.inputs import (
    RequestRejected,
    readings_features_many,
    small_batch_features,
    windows_frame,
)
from refrig_assets.simulator import FleetSimulator, SimulationConfig

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
RECEIVED = START + timedelta(hours=1, minutes=2)
SENSORS = [c.name for c in load_contract("sensor_readings").columns_with_role("sensor")]


def device_hour(device: str, seed: int, minutes: int = 60) -> pd.DataFrame:
    """One device's hour of plausible readings, every sensor within its operating range."""
    rng = np.random.default_rng(seed)
    ts = [START + timedelta(minutes=m) for m in range(minutes)]
    frame = pd.DataFrame({"device_id": device, "ts": ts})
    base = {
        "temperature_evaporator": -20.0,
        "temperature_condenser": 40.0,
        "pressure_low_side": 200.0,
        "pressure_high_side": 1500.0,
        "current_compressor": 8.0,
        "vibration_compressor": 3.0,
        "ambient_temperature": 20.0,
    }
    for name, value in base.items():
        frame[name] = np.round(value + rng.normal(0, 1, minutes), 3)
    frame["door_open"] = rng.random(minutes) < 0.1
    return frame


def table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def registered(*devices: str) -> pa.Table:
    return pa.table({"device_id": pa.array(list(devices), pa.string())})


def both(frames: list[pd.DataFrame], ids: pa.Table):
    """(in-memory form, batch form) of the same requests; the in-memory form must take them."""
    tables = [table(f) for f in frames]
    small = small_batch_features(connect(), tables, ids, RECEIVED)
    batch = readings_features_many(connect(), tables, ids, RECEIVED, small=False)
    assert small is not None, "the in-memory form declined a request the batch path keeps whole"
    return small, batch


def assert_same(frames: list[pd.DataFrame], ids: pa.Table) -> list[pd.DataFrame]:
    small, batch = both(frames, ids)
    for mine, theirs in zip(small, batch, strict=True):
        assert not isinstance(theirs, RequestRejected)
        pd.testing.assert_frame_equal(mine, theirs)
    return small


def flags(features: pd.DataFrame) -> set[str]:
    return {f for mask in features["quality_mask"] for f in decode_mask(int(mask))}


def test_plain_hours_of_several_devices_give_the_batch_windows():
    frames = [device_hour(f"dev-{i}", i) for i in range(3)]
    small = assert_same([pd.concat(frames)], registered("dev-0", "dev-1", "dev-2"))
    assert len(small[0]) == 3 * 4


def test_simulated_fleet_hour_gives_the_batch_windows():
    config = SimulationConfig(devices=6, hours=1, start=START, seed=7)
    [(_, readings)] = list(FleetSimulator(config).hours())
    readings = readings.sample(frac=1.0, random_state=3)  # any row order
    ids = registered(*sorted(readings["device_id"].unique())[:-1])  # one unregistered
    [small] = assert_same([readings], ids)
    assert "UNREGISTERED_DEVICE" in flags(small)


def test_every_row_flag_the_request_form_computes_matches_the_batch_path():
    frame = device_hour("dev-a", 1)
    frame.loc[3, "temperature_evaporator"] = None  # dropout
    frame.loc[4, "vibration_compressor"] = np.nan  # NaN is a missing value
    frame.loc[5, "pressure_high_side"] = 4600.0  # out of range
    frame.loc[10:45, "vibration_compressor"] = 3.5  # stuck: 35 minutes of one value
    frame.loc[0:30, "current_compressor"] = 0.0  # steady value: exempt from stuck
    frame.loc[50:59, "ambient_temperature"] = 21.0  # a short repeat: not stuck
    frame.loc[20:50, "pressure_low_side"] = 222.0  # exactly 30 minutes: stuck
    unit = device_hour("dev-b", 2)
    unit["temperature_condenser"] = unit["temperature_condenser"] * 1.8 + 32  # °F in °C
    unit.loc[0:2, "door_open"] = None
    future = device_hour("dev-c", 3)
    late_received = START + timedelta(minutes=40)  # readings after 45 min are in its future
    tables = [table(pd.concat([frame, unit]))]
    ids = registered("dev-a", "dev-b", "dev-c")
    small = assert_same([pd.concat([frame, unit])], ids)[0]
    found = flags(small)
    assert {"SENSOR_DROPOUT", "OUT_OF_RANGE", "STUCK_SENSOR", "UNIT_SUSPECT"} <= found

    tables = [table(future)]
    small_f = small_batch_features(connect(), tables, ids, late_received)
    batch_f = readings_features_many(connect(), tables, ids, late_received, small=False)
    assert small_f is not None and not isinstance(batch_f[0], RequestRejected)
    pd.testing.assert_frame_equal(small_f[0], batch_f[0])
    assert "FUTURE_TIMESTAMP" in flags(small_f[0])


def test_a_request_lacking_optional_sensors_and_a_partial_hour_match_the_batch_path():
    frame = device_hour("dev-a", 4, minutes=37).drop(columns=["ambient_temperature", "door_open"])
    frame.loc[0:36, "current_compressor"] = 0.0
    assert_same([frame], registered("dev-a"))


def test_a_flat_idle_current_is_no_stuck_sensor_in_a_request_as_in_the_batch_path():
    # A stopped compressor draws the same small current (its controller) for as long as it
    # stays stopped: below the contract's running level that is no stuck sensor.
    frame = device_hour("dev-a", 11)
    frame.loc[0:45, "current_compressor"] = 0.08
    small = assert_same([frame], registered("dev-a"))[0]
    assert "STUCK_SENSOR" not in flags(small)


def test_a_request_of_per_sensor_copies_is_folded_and_scored_not_refused():
    whole = device_hour("dev-a", 12)
    temperature = whole[["device_id", "ts", "temperature_evaporator"]]
    rest = whole.drop(columns=["temperature_evaporator"])
    ids = registered("dev-a")
    [result] = readings_features_many(
        connect(), [table(pd.concat([temperature, rest]))], ids, RECEIVED
    )
    [expected] = readings_features_many(connect(), [table(whole)], ids, RECEIVED)
    assert not isinstance(result, RequestRejected), result
    pd.testing.assert_frame_equal(result, expected)


def test_requests_together_each_get_the_batch_windows_of_their_own_devices():
    frames = [device_hour("dev-a", 5), device_hour("dev-b", 6), device_hour("dev-c", 7)]
    frames[1].loc[0:40, "temperature_evaporator"] = -18.0
    small = assert_same(frames, registered("dev-a", "dev-b"))
    assert [set(s["device_id"]) for s in small] == [{"dev-a"}, {"dev-b"}, {"dev-c"}]


def rejected_variants() -> dict[str, pd.DataFrame]:
    """A request breaking each row or column rule the request path refuses."""
    base = device_hour("dev-a", 8)
    out: dict[str, pd.DataFrame] = {}
    unparsable = base.astype({"pressure_low_side": object})
    unparsable.loc[7, "pressure_low_side"] = "high"
    out["unparsable_value"] = unparsable.astype({"pressure_low_side": str})
    invalid = base.copy()
    invalid.loc[2, "device_id"] = "bad id!"
    out["invalid_device_id"] = invalid
    implausible = base.copy()
    implausible.loc[4, "ts"] = datetime(2020, 1, 1, tzinfo=UTC)
    out["implausible_timestamp"] = implausible
    missing_key = base.copy()
    missing_key.loc[6, "device_id"] = None
    out["missing_value"] = missing_key
    storm = base.copy()
    storm.loc[1:, SENSORS] = np.nan  # every sensor reports, then only NaN
    out["nan_storm"] = storm
    out["missing_column"] = base.drop(columns=["ts"])
    return out


@pytest.mark.parametrize("rule", sorted(rejected_variants()))
def test_a_request_breaking_a_rule_is_left_to_the_batch_path_which_names_it(rule):
    frame = rejected_variants()[rule]
    ids = registered("dev-a")
    assert small_batch_features(connect(), [table(frame)], ids, RECEIVED) is None
    [result] = readings_features_many(connect(), [table(frame)], ids, RECEIVED)
    assert isinstance(result, RequestRejected)
    assert rule in {v.rule for v in result.violations}


@pytest.mark.parametrize("case", ["duplicate", "two_hours"])
def test_duplicates_and_several_hours_take_the_batch_path_and_still_score(case):
    frame = device_hour("dev-a", 9)
    if case == "duplicate":
        frame = pd.concat([frame, frame.iloc[[5]]])
    else:
        later = device_hour("dev-a", 10)
        later["ts"] = later["ts"] + timedelta(hours=1)
        frame = pd.concat([frame, later])
    ids = registered("dev-a")
    assert (
        small_batch_features(connect(), [table(frame)], ids, RECEIVED + timedelta(hours=1)) is None
    )
    [result] = readings_features_many(connect(), [table(frame)], ids, RECEIVED + timedelta(hours=1))
    assert isinstance(result, pd.DataFrame) and len(result) in (4, 8)


def test_precomputed_windows_as_numbers_or_as_text_give_the_same_checked_frame():
    [features] = small_batch_features(
        connect(), [table(device_hour("dev-a", 11))], registered("dev-a"), RECEIVED
    )
    numbers = pa.Table.from_pandas(features, preserve_index=False)
    numeric = [
        f.name
        for f in numbers.schema
        if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)
    ]
    text = numbers
    for name in numeric:
        i = text.schema.get_field_index(name)
        text = text.set_column(i, name, text.column(name).cast(pa.string()))

    pd.testing.assert_frame_equal(windows_frame(numbers, []), windows_frame(text, []))
    assert len(numeric) > 10


def test_a_sensor_a_device_s_kit_lacks_is_no_dropout_in_a_request_as_in_the_batch_path(
    refrig_home, monkeypatch
):
    from refrig_assets.core.fleet_sensors import measurement_columns
    from refrig_assets.core.reported_measurements import record_device_kits, record_reported
    from refrig_assets.core.settings import get_settings

    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    every = {c.name for c in measurement_columns(load_contract("sensor_readings"))}
    data_dir = get_settings().data_dir
    record_reported(data_dir, sorted(every), "2026-03-02-09:00")
    record_device_kits(data_dir, {"dev-b": every - {"pressure_low_side"}})
    full = device_hour("dev-a", 5)
    without = device_hour("dev-b", 6).assign(pressure_low_side=None)
    ids = registered("dev-a", "dev-b")
    small = assert_same([pd.concat([full, without])], ids)[0]
    assert "SENSOR_DROPOUT" not in flags(small)
    lost = device_hour("dev-a", 7)
    lost.loc[40:, "pressure_low_side"] = None  # dev-a's kit has it: its loss is a dropout
    assert "SENSOR_DROPOUT" in flags(assert_same([pd.concat([lost, without])], ids)[0])
