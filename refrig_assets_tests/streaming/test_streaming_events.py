"""Streaming rules for operational and site events: a door open without a break beyond the
device's limit (door_ajar) and the compressor current below even its idle level for minutes
(power_loss) fire within minutes; ordinary door openings and off-cycles do not."""

import pandas as pd

from refrig_assets.streaming.replay import replay

T0 = pd.Timestamp("2026-01-01T00:00Z")


def readings(minutes, device="dev-1", **columns):
    """One reading a minute; ``columns`` give per-minute values (callables of the minute)."""
    ts = [T0 + pd.Timedelta(minutes=m) for m in range(minutes)]
    frame = pd.DataFrame({"device_id": device, "ts": ts})
    defaults = dict(
        temperature_evaporator=lambda m: -8.0,
        temperature_condenser=lambda m: 35.0,
        pressure_low_side=lambda m: 270.0,
        pressure_high_side=lambda m: 1400.0,
        current_compressor=lambda m: 7.0 if (m // 10) % 2 else 0.05,
        vibration_compressor=lambda m: 2.0 if (m // 10) % 2 else 0.6,
        ambient_temperature=lambda m: 22.0,
        door_open=lambda m: False,
    )
    defaults.update(columns)
    for name, f in defaults.items():
        frame[name] = [f(m) for m in range(minutes)]
    return frame


def fired(frame, rule):
    firings = replay([frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2 :]])
    return firings[firings["rule"] == rule]


def test_a_door_open_longer_than_the_limit_fires_once_within_a_minute_of_the_limit():
    # Open from minute 30 to 89 (the registry default limit is 20 min); batches split at 60.
    frame = readings(120, door_open=lambda m: 30 <= m < 90)
    hits = fired(frame, "door_ajar")
    assert len(hits) == 1
    assert pd.Timestamp(hits["ts"].iloc[0]) == T0 + pd.Timedelta(minutes=51)


def test_a_door_open_exactly_the_limit_or_opened_often_does_not_fire():
    at_limit = readings(120, door_open=lambda m: 30 <= m <= 50)
    often = readings(120, door_open=lambda m: m % 5 < 3)
    assert fired(at_limit, "door_ajar").empty
    assert fired(often, "door_ajar").empty


def test_current_below_the_idle_draw_for_minutes_is_a_power_loss():
    # Normal cycling for 255 min (over an hour of idle history), then no supply at all.
    dark = readings(
        300,
        current_compressor=lambda m: 0.0 if m >= 255 else (7.0 if (m // 10) % 2 else 0.05),
    )
    hits = fired(dark, "power_loss")
    assert len(hits) == 1
    # sustain_minutes (5) after the first dark reading
    assert pd.Timestamp(hits["ts"].iloc[0]) == T0 + pd.Timedelta(minutes=260)


def test_ordinary_off_cycles_and_a_short_dip_are_no_power_loss():
    assert fired(readings(300), "power_loss").empty
    dip = readings(
        300,
        current_compressor=lambda m: 0.0 if 255 <= m < 259 else (7.0 if (m // 10) % 2 else 0.05),
    )
    assert fired(dip, "power_loss").empty


def test_a_sensor_that_reads_zero_when_idle_cannot_tell_and_stays_silent():
    zero_idle = readings(
        300, current_compressor=lambda m: 0.0 if m >= 255 or not (m // 10) % 2 else 7.0
    )
    assert fired(zero_idle, "power_loss").empty


def small_motor(minutes, **columns):
    """A 1.5 A motor under the contract's running_above (2 A): every reading counts as idle,
    runs and stops alike; its suction pulls down by a third at each start."""
    return readings(
        minutes,
        current_compressor=lambda m: 1.5 if (m // 10) % 2 else 0.01,
        pressure_low_side=lambda m: 180.0 if (m // 10) % 2 else 270.0,
        vibration_compressor=lambda m: 4.0 if (m // 10) % 2 else 0.6,
        **columns,
    )


def test_a_motor_that_never_reaches_the_running_threshold_has_no_idle_draw_to_lose():
    # Its "idle average" mixes runs and stops; an ordinary stop is not a lost supply.
    assert fired(small_motor(300), "power_loss").empty


def test_a_motor_that_never_reaches_the_running_threshold_has_no_starts_to_tell_from_a_leak():
    # Its starts are invisible, so each start's pull-down would read as a pressure loss, and
    # each run's vibration as a spike over the "idle" level.
    assert fired(small_motor(300), "acute_pressure_loss").empty
    assert fired(small_motor(300), "vibration_spike").empty


def test_a_device_that_runs_keeps_its_running_state_rules():
    # The suction falls by 44 % within a run (running from minute 270).
    leak = readings(300, pressure_low_side=lambda m: 150.0 if 273 <= m < 280 else 270.0)
    assert not fired(leak, "acute_pressure_loss").empty


def test_a_fleet_without_a_door_switch_gets_no_door_alerts():
    frame = readings(120).drop(columns=["door_open"])
    frame.loc[frame.index[30:90], "temperature_evaporator"] = 5.0
    firings = replay([frame])
    assert "door_ajar" not in set(firings["rule"])
