"""Streaming threshold rules, one by one, firing and not firing at their edges.

Readings are built minute by minute for a handful of devices and fed to the real engine in
batches, the way landing files arrive; thresholds and windows come from
contracts/device_registry.yaml.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.streaming.config import load_streaming_settings
from refrig_assets.streaming.engine import DeviceThresholds, StreamingEngine
from refrig_assets.streaming.replay import frame_arrays
from refrig_assets.streaming.state import StreamState

SETTINGS = load_streaming_settings()
REGISTRY_CONTRACT = load_contract("device_registry")
RUNNING_ABOVE = SETTINGS.running_above
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
RUNNING = {
    "current_compressor": 10.0,
    "vibration_compressor": 2.0,
    "pressure_low_side": 300.0,
    "temperature_evaporator": -20.0,
}
IDLE_CURRENT = RUNNING_ABOVE / 10


def default(column: str) -> float:
    return float(REGISTRY_CONTRACT.column(column).default)


def readings(device: str = "d1", start: int = 0, **series) -> pd.DataFrame:
    """One reading per minute from minute ``start``; each keyword is a list (one value per
    minute) or a constant; unspecified sensors hold a healthy running value."""
    n = max((len(v) for v in series.values() if isinstance(v, list)), default=1)
    frame = pd.DataFrame(
        {
            "device_id": device,
            "ts": [T0 + pd.Timedelta(minutes=start + i) for i in range(n)],
        }
    )
    for sensor, value in {**RUNNING, **series}.items():
        frame[sensor] = value if isinstance(value, list) else [value] * n
    return frame


def engine(registry: pd.DataFrame | None = None, state: StreamState | None = None):
    return StreamingEngine(
        SETTINGS, state or StreamState.empty(SETTINGS), DeviceThresholds(registry, SETTINGS)
    )


def fire(eng: StreamingEngine, *frames: pd.DataFrame) -> pd.DataFrame:
    """Episode-opening firings of one batch made of ``frames``."""
    batch = pd.concat(frames, ignore_index=True)
    return eng.process(*frame_arrays(batch, SETTINGS.sensors)).firings


def rules(firings: pd.DataFrame) -> list[str]:
    return sorted(firings["rule"])


def registry(**columns) -> pd.DataFrame:
    base = {"device_id": ["d1"], "site_id": ["s1"], "cohort": ["reach_in"]}
    return pd.DataFrame({**base, **{k: [v] for k, v in columns.items()}})


# -- compressor overload ---------------------------------------------------------------------


def test_current_at_the_threshold_does_not_fire_and_just_above_does():
    limit = default("current_threshold")
    given = registry(current_threshold=limit)
    assert fire(engine(given), readings(current_compressor=[limit, limit])).empty
    firing = fire(engine(given), readings(current_compressor=[limit, limit + 0.1]))
    assert rules(firing) == ["compressor_overload"]
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=1)
    assert firing["observed"].iloc[0] == pytest.approx(limit + 0.1)


def test_current_threshold_is_per_device_from_the_registry():
    limit = default("current_threshold")
    own = registry(current_threshold=limit + 10)
    assert fire(engine(own), readings(current_compressor=limit + 5)).empty
    assert rules(fire(engine(own), readings(current_compressor=limit + 11))) == [
        "compressor_overload"
    ]


def test_a_registry_without_a_threshold_uses_the_contract_default():
    limit = default("current_threshold")
    blank = registry(current_threshold=np.nan)
    assert rules(fire(engine(blank), readings(current_compressor=limit + 1))) == [
        "compressor_overload"
    ]


# -- vibration spike -------------------------------------------------------------------------


def history(device: str = "d1", minutes: int = 61, **series) -> pd.DataFrame:
    """An hour of healthy running readings: enough history for the moving average."""
    return readings(device, **{k: [v] * minutes for k, v in {**RUNNING, **series}.items()})


def test_vibration_never_fires_without_history():
    spike = readings(vibration_compressor=RUNNING["vibration_compressor"] * 50)
    assert fire(engine(), spike).empty


def test_vibration_fires_above_the_multiple_of_its_moving_average_only():
    multiple = default("vibration_multiplier")
    base = RUNNING["vibration_compressor"]
    for value, expected in (
        (base * multiple * 0.995, []),
        (base * multiple * 1.005, ["vibration_spike"]),
    ):
        eng = engine()
        fire(eng, history())
        assert rules(fire(eng, readings(start=61, vibration_compressor=value))) == expected


def test_vibration_needs_the_minimum_history_in_the_same_running_state():
    minutes = int(SETTINGS.rule("vibration_spike").minutes("min_history_minutes"))
    spike = RUNNING["vibration_compressor"] * 10
    short = engine()
    fire(short, history(minutes=minutes))  # first reading adds no time: minutes - 1 covered
    assert fire(short, readings(start=minutes, vibration_compressor=spike)).empty
    enough = engine()
    fire(enough, history(minutes=minutes + 1))
    assert not fire(enough, readings(start=minutes + 1, vibration_compressor=spike)).empty


def idle_then_running_history(eng: StreamingEngine) -> dict[str, float]:
    """An hour running, then an hour idle: both running states have their moving average."""
    idle = {"current_compressor": IDLE_CURRENT, "vibration_compressor": 0.5}
    fire(
        eng,
        pd.concat(
            [history(), history(**idle).assign(ts=lambda f: f["ts"] + pd.Timedelta(minutes=61))]
        ),
    )
    return idle


def test_vibration_compares_like_with_like_running_state():
    """Healthy idle vibration is a fraction of running vibration: a compressor start is not a
    spike, because running readings are compared with the running average."""
    eng = engine()
    idle_then_running_history(eng)
    start = readings(start=122, vibration_compressor=RUNNING["vibration_compressor"])
    assert fire(eng, start).empty


def test_running_vibration_read_with_a_frozen_idle_current_is_not_a_spike():
    """The current froze at an idle value while the compressor went on cycling: its normal
    running vibration is several times the idle average, but no more than the device's running
    average, so nothing fires (a stuck current sensor, not compressor wear)."""
    eng = engine()
    idle = idle_then_running_history(eng)
    frozen = idle["current_compressor"]
    cycling = [RUNNING["vibration_compressor"], idle["vibration_compressor"]] * 5
    assert fire(
        eng, readings(start=122, current_compressor=frozen, vibration_compressor=cycling)
    ).empty


def test_vibration_above_the_multiple_of_both_states_fires_whatever_state_the_current_says():
    multiple = default("vibration_multiplier")
    spike = RUNNING["vibration_compressor"] * multiple * 1.05
    for current in (IDLE_CURRENT, RUNNING["current_compressor"]):
        eng = engine()
        idle_then_running_history(eng)
        firing = fire(
            eng, readings(start=122, current_compressor=current, vibration_compressor=spike)
        )
        assert rules(firing) == ["vibration_spike"]
        # the reference is the running average, and the alert names it so
        assert firing["reference"].iloc[0] == pytest.approx(RUNNING["vibration_compressor"])
        assert firing["running"].iloc[0] == 1


def test_a_new_device_uses_its_cohorts_typical_average_once_enough_devices_have_history():
    need = int(SETTINGS.rule("vibration_spike").params["cohort_min_devices"])
    devices = [f"d{i}" for i in range(need + 1)]
    reg = pd.DataFrame({"device_id": devices, "site_id": "s1", "cohort": "reach_in"})
    spike = RUNNING["vibration_compressor"] * 5
    newcomer = devices[-1]

    few = engine(reg)
    fire(few, *(history(d) for d in devices[: need - 1]))
    assert fire(few, readings(newcomer, start=61, vibration_compressor=spike)).empty

    enough = engine(reg)
    fire(enough, *(history(d) for d in devices[:need]))
    assert rules(fire(enough, readings(newcomer, start=61, vibration_compressor=spike))) == [
        "vibration_spike"
    ]


# -- acute pressure loss ---------------------------------------------------------------------


def test_pressure_drop_of_exactly_the_fraction_does_not_fire_and_more_does():
    fraction = default("pressure_drop_fraction")
    high = RUNNING["pressure_low_side"]
    assert fire(engine(), readings(pressure_low_side=[high, high * (1 - fraction)])).empty
    firing = fire(engine(), readings(pressure_low_side=[high, high * (1 - fraction) - 1]))
    assert rules(firing) == ["acute_pressure_loss"]
    assert firing["reference"].iloc[0] == pytest.approx(high)


def test_pressure_drop_counts_only_within_the_window():
    window = int(SETTINGS.rule("acute_pressure_loss").minutes("window_minutes"))
    high, mid, low = 300.0, 250.0, 205.0  # high → low is a 32 % drop, mid → low 18 %
    inside = [high] + [mid] * (window - 1) + [low]  # high exactly `window` minutes before low
    outside = [high] + [mid] * window + [low]
    assert rules(fire(engine(), readings(pressure_low_side=inside))) == ["acute_pressure_loss"]
    assert fire(engine(), readings(pressure_low_side=outside)).empty


def test_pressure_swing_of_a_compressor_start_is_not_a_loss():
    """Healthy cycling: the low side falls by a third when the compressor starts."""
    idle, running = 330.0, 220.0
    start = readings(
        current_compressor=[IDLE_CURRENT, IDLE_CURRENT, 10.0, 10.0, 10.0],
        pressure_low_side=[idle, idle, 250.0, 228.0, running],
    )
    assert fire(engine(), start).empty


def test_pressure_loss_right_after_a_compressor_start_fires_once_running_readings_show_it():
    """The fault forces the compressor on and drains the low side: compared among the running
    readings alone the fall is still more than the fraction. The device has shown its running
    level (300 kPa) before; a start before any is known is not judged
    (test_streaming_start_pull_down)."""
    eng = engine()
    assert fire(eng, readings(pressure_low_side=[300.0] * 10)).empty
    forced_on = readings(
        start=10,
        current_compressor=[IDLE_CURRENT, 10.0, 10.0, 10.0],
        pressure_low_side=[330.0, 160.0, 110.0, 100.0],
    )
    firing = fire(eng, forced_on)
    assert rules(firing) == ["acute_pressure_loss"]
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=12)  # 160 → 110 kPa: 31 %


def test_pressure_window_spans_two_files():
    eng = engine()
    assert fire(eng, readings(pressure_low_side=[300.0, 300.0, 300.0])).empty
    assert rules(fire(eng, readings(start=3, pressure_low_side=[200.0]))) == ["acute_pressure_loss"]


def test_pressure_readings_across_a_data_gap_are_not_compared():
    gap = int(SETTINGS.max_gap_ns // 60e9)
    eng = engine()
    fire(eng, readings(pressure_low_side=[300.0]))
    assert fire(eng, readings(start=gap + 1, pressure_low_side=[100.0])).empty


# -- total cooling loss ----------------------------------------------------------------------


def rise(rate: float, minutes: int, flat_after: int = 0) -> list[float]:
    values = [-20.0 + rate * i for i in range(minutes + 1)]
    return values + [values[-1]] * flat_after


def test_evaporator_rising_faster_than_the_limit_for_the_sustain_time_fires():
    limit = default("evaporator_rise_per_minute")
    sustain = int(SETTINGS.rule("total_cooling_loss").minutes("sustain_minutes"))
    firing = fire(engine(), readings(temperature_evaporator=rise(limit + 0.1, sustain)))
    assert rules(firing) == ["total_cooling_loss"]
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=sustain)
    assert firing["span_minutes"].iloc[0] == pytest.approx(sustain)


def test_evaporator_rise_shorter_than_the_sustain_time_or_at_the_limit_does_not_fire():
    limit = default("evaporator_rise_per_minute")
    sustain = int(SETTINGS.rule("total_cooling_loss").minutes("sustain_minutes"))
    assert fire(engine(), readings(temperature_evaporator=rise(limit + 1, sustain - 1, 5))).empty
    assert fire(engine(), readings(temperature_evaporator=rise(limit, sustain + 5))).empty


def test_evaporator_rise_spans_two_files():
    eng = engine()
    values = rise(default("evaporator_rise_per_minute") + 0.5, 3)
    assert fire(eng, readings(temperature_evaporator=values[:2])).empty
    assert rules(fire(eng, readings(start=2, temperature_evaporator=values[2:]))) == [
        "total_cooling_loss"
    ]


def test_evaporator_rise_arriving_one_reading_per_file_fires_once_on_time():
    limit = default("evaporator_rise_per_minute")
    sustain = int(SETTINGS.rule("total_cooling_loss").minutes("sustain_minutes"))
    values = rise(limit + 0.5, sustain + 3)
    eng = engine()
    fired_at = [
        minute
        for minute, value in enumerate(values)
        if not fire(eng, readings(start=minute, temperature_evaporator=[value])).empty
    ]
    assert fired_at == [sustain]


def test_a_pause_in_the_rise_restarts_the_sustain_time():
    limit = default("evaporator_rise_per_minute")
    up = limit + 0.5
    values = [-20.0, -20 + up, -20 + 2 * up, -20 + 2 * up, -20 + 3 * up, -20 + 4 * up]
    eng = engine()
    assert fire(eng, readings(temperature_evaporator=values[:4])).empty
    assert fire(eng, readings(start=4, temperature_evaporator=values[4:])).empty
    assert not fire(eng, readings(start=6, temperature_evaporator=[-20 + 5 * up])).empty


# -- episodes, re-reads, state ---------------------------------------------------------------


def test_a_lasting_firing_is_one_episode_and_a_firing_after_the_gap_a_new_one():
    gap = int(SETTINGS.episode_gap_ns // 60e9)
    over = default("current_threshold") + 5
    eng = engine(registry(current_threshold=default("current_threshold")))
    assert len(fire(eng, readings(current_compressor=[over] * 30))) == 1
    assert fire(eng, readings(start=29 + gap, current_compressor=[over])).empty  # gap minutes
    firing = fire(eng, readings(start=29 + 2 * gap + 1, current_compressor=[over]))
    assert len(firing) == 1


def test_reading_the_same_readings_again_fires_nothing_and_counts_them_late():
    frame = readings(current_compressor=[50.0, 50.0])
    eng = engine()
    assert len(fire(eng, frame)) == 1
    result = eng.process(*frame_arrays(frame, SETTINGS.sensors))
    assert result.firings.empty and result.late == 2


def test_devices_are_evaluated_independently():
    eng = engine()
    firing = fire(
        eng,
        readings("a", pressure_low_side=[300.0, 300.0]),
        readings("b", pressure_low_side=[300.0, 150.0]),
        readings("c", current_compressor=[10.0, 60.0]),
    )
    assert sorted(zip(firing["device_id"], firing["rule"], strict=True)) == [
        ("b", "acute_pressure_loss"),
        ("c", "compressor_overload"),
    ]


def test_state_saved_and_loaded_continues_windows_averages_and_episodes(tmp_path):
    path = tmp_path / "state"
    first = engine()
    fire(first, history(), readings("p", pressure_low_side=[300.0] * 3))
    fire(first, readings("o", current_compressor=[50.0]))
    first.state.save(path)

    second = engine(state=StreamState.load(path, SETTINGS))
    firing = fire(
        second,
        readings("p", start=3, pressure_low_side=[200.0]),
        readings(start=61, vibration_compressor=RUNNING["vibration_compressor"] * 4),
        readings("o", start=1, current_compressor=[50.0]),
    )
    assert sorted(zip(firing["device_id"], firing["rule"], strict=True)) == [
        ("d1", "vibration_spike"),
        ("p", "acute_pressure_loss"),
    ]


def test_a_damaged_state_file_falls_back_to_the_previous_state(tmp_path):
    path = tmp_path / "state"
    first = engine()
    fire(first, history())
    first.state.save(path)
    saved_devices = list(first.state.devices)
    fire(first, readings("o", current_compressor=[50.0]))
    first.state.save(path)  # the first save becomes the backup
    path.write_bytes(path.read_bytes()[:100])  # a crash or a full disk tore the file

    restored = StreamState.load(path, SETTINGS)
    assert list(restored.devices) == saved_devices


def test_a_state_damaged_beyond_its_backup_is_rebuilt_empty_instead_of_failing(tmp_path):
    path = tmp_path / "state"
    path.write_bytes(b"not a state file")
    assert len(StreamState.load(path, SETTINGS)) == 0


def test_missing_values_never_fire():
    nothing = readings(
        current_compressor=[np.nan, np.nan],
        pressure_low_side=[300.0, np.nan],
        temperature_evaporator=[np.nan, 10.0],
    )
    assert fire(engine(), nothing).empty


@pytest.mark.parametrize("cadence_seconds", [2, 15, 300])
def test_rules_hold_at_any_reporting_cadence(cadence_seconds):
    """Windows are in time, not in readings: the same events fire at 2 s, 15 s or 5 min."""
    per_minute = 60 / cadence_seconds
    n = int(25 * per_minute)
    minutes = np.arange(n) / per_minute
    pressure = np.where(minutes < 16, 300.0, 300.0 - 30.0 * np.minimum(minutes - 16, 4))  # -40 %
    evaporator = np.where(minutes < 10, -20.0, -20.0 + 2.5 * np.minimum(minutes - 10, 8))
    frame = pd.DataFrame(
        {
            "device_id": ["p"] * n + ["e"] * n,
            "ts": [T0 + pd.Timedelta(seconds=cadence_seconds * i) for i in range(n)] * 2,
            **{k: v for k, v in RUNNING.items() if k not in ("pressure_low_side",)},
            "pressure_low_side": np.r_[pressure, np.full(n, 300.0)],
        }
    )
    frame["temperature_evaporator"] = np.r_[np.full(n, -20.0), evaporator]
    firing = fire(engine(), frame).set_index("device_id")
    assert firing["rule"].to_dict() == {"p": "acute_pressure_loss", "e": "total_cooling_loss"}
    # Pressure passes -30 % at 19 min; the rise covers 3 min by 13 min (one reading later at 5 min).
    assert firing.loc["p", "ts"] <= T0 + pd.Timedelta(minutes=19, seconds=cadence_seconds)
    assert firing.loc["e", "ts"] <= T0 + pd.Timedelta(minutes=13, seconds=cadence_seconds)


def test_a_running_reading_without_running_history_stays_silent_even_with_an_idle_average():
    """Only the idle state has an hour of history: normal running vibration is several times
    the idle average, but the running state's own average is not known yet, so no spike."""
    eng = engine()
    idle = {"current_compressor": IDLE_CURRENT, "vibration_compressor": 0.5}
    fire(eng, history(**idle))
    assert fire(eng, readings(start=61, vibration_compressor=RUNNING["vibration_compressor"])).empty
