"""The running state's settle after a defrost lasts until the pull-down has ended: the
compressor's first stop after the defrost (the thermostat satisfied), at most
``running_settle.after_defrost_max_seconds`` after it, never less than ``after_defrost_seconds``.

A case read every second whose coil the compressor pulls down from -1 to -27 degC over 20
minutes after a defrost kept the readings from minute 10 on in its running statistics with a
fixed settle: a still-warm running coil, which the detectors flagged window by window. Both forms
of the feature SQL, the previous hour's carry and the serving twin leave out the same readings;
15-minute windows (the settle does not apply) are unchanged."""

from __future__ import annotations

import dataclasses

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.features.windows import feature_sql, settle_carry_sql, settle_minutes
from refrig_assets.serving.window_features import window_features
from refrig_assets_tests.features.test_settle_carry import START, hour
from refrig_assets_tests.serving.test_window_features import (
    assert_same_windows,
    clean_of,
    every_kind,
    random_request,
)

READINGS = load_contract("sensor_readings")
FEATURES = load_contract("device_features")
SETTLE = FEATURES.settings["running_settle"]
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
DEFROST_ABOVE = READINGS.column("temperature_evaporator").extra["defrost_above"]
COL = "temperature_evaporator_running_mean"
DEFROST_END = 10 * 60  # seconds: the last reading in defrost is at 00:09:59
# The first window with a settled reading after the fixed settle (1 s: 00:19, its last second).
FIXED = (DEFROST_END - 1 + SETTLE["after_defrost_seconds"]) // 60


def device(
    cadence: int = 1,
    hours: int = 1,
    stop_s: int | None = 40 * 60,
    restart_s: int = 45 * 60,
    dev: str = "dev-1",
) -> pd.DataFrame:
    """One device read every ``cadence`` seconds: a defrost (compressor idle, coil above
    defrost_above) until ``DEFROST_END``, then a pull-down from -1 degC to about -27 degC over
    20 minutes with the compressor running until ``stop_s`` (None: it never stops), idle (the
    coil warming) until ``restart_s``, then running at its usual level."""
    t = np.arange(0, hours * 3600, cadence)
    since = np.clip((t - DEFROST_END) / 60.0, 0, None)
    pull = -27.5 + 26.5 * np.exp(-since / 6.0)  # -1 at the defrost's end, -26.6 at 20 min
    stopped = stop_s is not None
    idle = (t < DEFROST_END) | ((t >= stop_s) & (t < restart_s)) if stopped else t < DEFROST_END
    coil = np.where(t < DEFROST_END, DEFROST_ABOVE + 2.0, pull)
    if stopped:
        coil = np.where((t >= stop_s) & (t < restart_s), -20.0, coil)
        coil = np.where(t >= restart_s, -27.5, coil)
    others = dict.fromkeys(READINGS.sensor_columns, 1.0)
    return pd.DataFrame(
        {
            "device_id": dev,
            "ts": START + pd.to_timedelta(t, unit="s"),
            **others,
            "current_compressor": np.where(idle, RUNNING_ABOVE / 10, RUNNING_ABOVE + 5.0),
            "temperature_evaporator": coil,
            "ambient_temperature": 20.0,
            "door_open": False,
            "quality_mask": 0,
            "quality_flags": "",
            "source_file": "f.parquet",
        }
    )


def sql(frame: pd.DataFrame, cadence: int, ordered: bool, features=FEATURES, **kw) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("clean", frame)
    for name, relation in kw.pop("tables", {}).items():
        con.register(name, relation)
    text = feature_sql("clean", cadence_seconds=cadence, ordered=ordered, features=features, **kw)
    return con.execute(text).df()


def with_settle(**settle) -> Contract:
    return dataclasses.replace(
        FEATURES, settings={**FEATURES.settings, "running_settle": {**SETTLE, **settle}}
    )


def minute(out: pd.DataFrame, m: int) -> float:
    return out.loc[out["window_start"] == START + pd.Timedelta(minutes=m), COL].iloc[0]


@pytest.fixture(params=[False, True], ids=["partitioned", "in_order"])
def ordered(request):
    return request.param


def test_the_settings_make_the_settle_last_past_the_fixed_time_at_one_second():
    times = settle_minutes(FEATURES, 60)
    assert times.after_defrost == SETTLE["after_defrost_seconds"] / 60 < 20
    assert times.defrost_at_most == SETTLE["after_defrost_max_seconds"] / 60 >= 40
    # 15-minute windows: no settle after a defrost, so no cap either.
    assert settle_minutes(FEATURES, 900).defrost_at_most == 0.0


def test_a_twenty_minute_pull_down_at_one_second_is_left_out_until_the_first_stop(ordered):
    out = sql(device(cadence=1), 1, ordered)
    # From the defrost's end to the stop (00:40) the running coil is the pull-down: no
    # running statistic, also past after_defrost_seconds (the fixed settle kept 00:20-00:39,
    # -26.3 to -27.5 degC while the device runs at -27.5).
    assert SETTLE["after_defrost_seconds"] < 20 * 60
    assert all(np.isnan(minute(out, m)) for m in range(10, 45))
    # The restart at 00:45 settles as any start (its first minute's last second); then the
    # usual level.
    assert [minute(out, m) for m in range(45, 60)] == pytest.approx([-27.5] * 15)
    # The window's own statistics keep every reading.
    assert out["temperature_evaporator_mean"].notna().all()


def test_without_the_cap_the_settle_ends_at_the_fixed_time(ordered):
    # The defect, as it was: the pull-down's readings from after_defrost_seconds on.
    out = sql(device(cadence=1), 1, ordered, with_settle(after_defrost_max_seconds=0))
    assert np.isnan(minute(out, FIXED - 1))
    assert all(minute(out, m) > -27.4 for m in range(FIXED, 40))  # still warm: the pull-down


def test_a_device_that_never_stops_is_not_hidden_past_the_cap(ordered):
    # Read every 5 s for two hours (1-minute windows), running on from the defrost's end.
    out = sql(device(cadence=5, hours=2, stop_s=None), 5, ordered)
    cap = SETTLE["after_defrost_max_seconds"] / 60
    back = [m for m in range(120) if not np.isnan(minute(out, m))]
    # The last reading in defrost is at 00:09:55: the first settled reading is cap later.
    assert back[0] == int(np.ceil(DEFROST_END / 60 - 5 / 60 + cap)) - 1
    assert back == list(range(back[0], 120))


def test_a_stop_before_the_fixed_time_keeps_the_fixed_time(ordered):
    # A stop 3 minutes after the defrost, a restart at 5: the least settle still applies.
    out = sql(device(cadence=1, stop_s=13 * 60, restart_s=15 * 60), 1, ordered)
    assert np.isnan(minute(out, FIXED - 1))
    assert [minute(out, m) for m in range(FIXED, 60)] == pytest.approx([-27.5] * (60 - FIXED))


@pytest.mark.parametrize(
    ("stop_s", "restart_s"),
    [(40 * 60, 45 * 60), (50 * 60, 65 * 60), (70 * 60, 75 * 60), (None, 0)],
    ids=["stop-and-restart-before", "stop-before-restart-after", "stop-after", "no-stop"],
)
def test_the_carry_gives_the_running_state_of_the_two_hours_as_one(ordered, stop_s, restart_s):
    # The defrost in the first hour; the stop in it, at the hour, or after it, or none.
    frame = pd.concat(
        [
            device(cadence=5, hours=2, stop_s=stop_s, restart_s=restart_s),
            device(cadence=5, hours=2, stop_s=None, dev="dev-2").assign(
                current_compressor=RUNNING_ABOVE + 5.0, temperature_evaporator=-27.5
            ),
        ],
        ignore_index=True,
    )
    con = duckdb.connect()
    con.register("prev", hour(frame, 0))
    carry = con.execute(settle_carry_sql("prev", cadence_seconds=5)).df()
    carried = sql(hour(frame, 1), 5, ordered, carry="carry", tables={"carry": carry})
    whole = sql(frame, 5, ordered)
    whole = whole[whole["window_start"] >= START + pd.Timedelta(hours=1)].reset_index(drop=True)
    # The running statistics are those of the two hours as one partition (runs and streaks
    # start again at the hour either way: the carry only moves the settle).
    settled = [COL, "condenser_ambient_difference"]
    pd.testing.assert_frame_equal(carried[settled], whole[settled])
    # The device that ran settled all along keeps every window.
    assert (carried.loc[carried["device_id"] == "dev-2", COL] == -27.5).all()


def test_fifteen_minute_windows_are_unchanged_by_the_cap():
    # At 60 s the settle times are shorter than the window: the cap changes nothing.
    frame = device(cadence=60, hours=2, stop_s=None)
    for ordered in (False, True):
        pd.testing.assert_frame_equal(
            sql(frame, 60, ordered),
            sql(frame, 60, ordered, with_settle(after_defrost_max_seconds=0)),
        )
    assert settle_carry_sql("prev", cadence_seconds=60) is None


@pytest.mark.parametrize("stop_s", [40 * 60, None], ids=["stops", "never-stops"])
def test_the_serving_twin_leaves_out_the_same_readings(stop_s):
    frame = device(cadence=1, stop_s=stop_s)
    expected = sql(frame, 1, True)
    clean = pa.Table.from_pandas(frame.assign(ts=frame["ts"].astype("datetime64[us, UTC]")))
    found = window_features(clean, cadence_seconds=1)
    np.testing.assert_allclose(found[COL], expected[COL].to_numpy(), rtol=1e-9, atol=1e-9)
    assert np.isnan(found[COL]).sum() == expected[COL].isna().sum() > 30


@pytest.mark.parametrize(
    "settle",
    [
        {
            "after_start_seconds": 960,
            "after_defrost_seconds": 1200,
            "after_defrost_max_seconds": 2400,
        },
        {"after_start_seconds": 0, "after_defrost_seconds": 900, "after_defrost_max_seconds": 1800},
        {
            "after_start_seconds": 120,
            "after_defrost_seconds": 900,
            "after_defrost_max_seconds": 600,
        },
    ],
    ids=["start-and-cap", "cap-only", "cap-below-the-least"],
)
def test_random_requests_settle_alike_in_the_serving_twin(settle):
    # 15-minute windows at 60 s with settle times that apply there: random runs, stops,
    # defrosts, gaps and missing currents.
    contract = with_settle(**settle)
    for seed in (7, 8, 9, 21):
        assert_same_windows(
            clean_of(random_request(seed), ["dev-0", "dev-1"]), every_kind(contract)
        )
