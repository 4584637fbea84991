"""Defrosts that warm the coil fast (electric heaters, hot gas) are no total cooling loss, and
the suction pull-down after them is no acute pressure loss.

A device is built reading every 30 s: compressor cycles with the coil driven towards its running
level, and defrosts in which the idle coil is heated towards +12 °C with a 3-minute time
constant (a freezer's coil then warms at more than 10 K/min, five times the registry's
``evaporator_rise_per_minute``). Thresholds come from contracts/device_registry.yaml, the
defrost level from contracts/sensor_readings.yaml.
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
RULE = "total_cooling_loss"
LIMIT = float(load_contract("device_registry").column("evaporator_rise_per_minute").default)
DEFROST_ABOVE = float(
    load_contract("sensor_readings").column("temperature_evaporator").extra["defrost_above"]
)
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
STEP_S = 30
RUNNING_AMPS = 10.0 * SETTINGS.running_above
IDLE_AMPS = SETTINGS.running_above / 5
COIL_RUNNING = -28.0
DEFROST_TARGET = 12.0
HEATER_TAU_MIN = 3.0


def _relax(start: float, target: float, tau: float, minutes: np.ndarray) -> np.ndarray:
    return target + (start - target) * np.exp(-minutes / tau)


def defrost(minutes: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Coil and current of a defrost (idle, heated) from a running coil, then a restart."""
    t = np.arange(0, minutes * 60, STEP_S) / 60.0
    heat = t < minutes - 10
    coil = np.where(
        heat,
        _relax(COIL_RUNNING, DEFROST_TARGET, HEATER_TAU_MIN, t),
        _relax(DEFROST_TARGET, COIL_RUNNING, 1.5, t - (minutes - 10)),
    )
    return coil, np.where(heat, IDLE_AMPS, RUNNING_AMPS)


def running(minutes: int) -> tuple[np.ndarray, np.ndarray]:
    n = minutes * 60 // STEP_S
    return np.full(n, COIL_RUNNING), np.full(n, RUNNING_AMPS)


def frame(device: str, start_min: float, *parts: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Readings every STEP_S seconds from ``start_min`` minutes, the parts one after the other."""
    coil = np.concatenate([p[0] for p in parts])
    amps = np.concatenate([p[1] for p in parts])
    n = len(coil)
    return pd.DataFrame(
        {
            "device_id": device,
            "ts": T0 + pd.to_timedelta(start_min * 60 + STEP_S * np.arange(n), unit="s"),
            "current_compressor": amps,
            "vibration_compressor": np.where(amps > SETTINGS.running_above, 2.0, 0.0),
            "pressure_low_side": 300.0,
            "temperature_evaporator": coil,
            "door_open": 0.0,
        }
    )


def engine(cohorts: dict[str, str] | None = None, state: StreamState | None = None):
    registry = None
    if cohorts:
        registry = pd.DataFrame(
            {"device_id": list(cohorts), "site_id": "s1", "cohort": list(cohorts.values())}
        )
    return StreamingEngine(
        SETTINGS, state or StreamState.empty(SETTINGS), DeviceThresholds(registry, SETTINGS)
    )


def cooling_losses(eng: StreamingEngine, *frames: pd.DataFrame) -> pd.DataFrame:
    batch = pd.concat(frames, ignore_index=True)
    firings = eng.process(*frame_arrays(batch, SETTINGS.sensors)).firings
    return firings[firings["rule"] == RULE]


def test_the_heated_coil_warms_faster_than_the_limit_for_longer_than_the_sustain_time():
    coil, amps = defrost()
    rate = np.diff(coil) * 60 / STEP_S
    idle_fast = (amps[1:] <= SETTINGS.running_above) & (rate > LIMIT)
    sustain = SETTINGS.rule(RULE).minutes("sustain_minutes")
    assert idle_fast[: int(sustain * 60 / STEP_S) + 2].all()
    assert coil.max() > DEFROST_ABOVE


def test_a_defrost_as_fast_as_the_devices_earlier_ones_is_no_cooling_loss():
    eng = engine()
    cooling_losses(eng, frame("f1", 0, running(20), defrost(), running(30)))
    # The next defrost, hours later: a new episode, and the same warm-up as the first.
    assert cooling_losses(eng, frame("f1", 240, running(20), defrost(), running(30))).empty


def test_a_devices_first_defrost_is_judged_against_its_cohorts_defrosts():
    devices = [f"f{i}" for i in range(int(SETTINGS.rule(RULE).params["cohort_min_devices"]) + 1)]
    eng = engine({d: "freezer" for d in devices})
    cooling_losses(eng, *(frame(d, 0, running(20), defrost(), running(30)) for d in devices[1:]))
    assert cooling_losses(eng, frame(devices[0], 120, running(20), defrost(), running(30))).empty


def test_a_devices_defrost_warm_up_is_kept_in_the_saved_state(tmp_path):
    eng = engine()
    cooling_losses(eng, frame("f1", 0, running(20), defrost(), running(30)))
    eng.state.save(tmp_path / "state")
    reloaded = engine(state=StreamState.load(tmp_path / "state", SETTINGS))
    assert cooling_losses(reloaded, frame("f1", 240, running(20), defrost(), running(30))).empty


def test_an_idle_coil_warming_faster_than_its_defrosts_ever_do_still_fires():
    eng = engine()
    cooling_losses(eng, frame("f1", 0, running(20), defrost(), running(30)))
    t = np.arange(0, 20 * 60, STEP_S) / 60.0
    fast = COIL_RUNNING + 2 * (DEFROST_TARGET - COIL_RUNNING) / HEATER_TAU_MIN * t
    lost = (fast, np.full(len(t), IDLE_AMPS))
    firing = cooling_losses(eng, frame("f1", 240, running(20), lost))
    assert len(firing) == 1
    assert firing["reference"].iloc[0] > LIMIT  # judged against its own warm-up


def test_a_running_compressor_over_a_warming_coil_fires_whatever_its_defrosts():
    eng = engine()
    cooling_losses(eng, frame("f1", 0, running(20), defrost(), running(30)))
    t = np.arange(0, 10 * 60, STEP_S) / 60.0
    warming = (COIL_RUNNING + (LIMIT + 1.0) * t, np.full(len(t), RUNNING_AMPS))
    firing = cooling_losses(eng, frame("f1", 240, running(20), warming))
    assert len(firing) == 1
    assert firing["reference"].iloc[0] == LIMIT


def test_a_device_without_defrost_history_keeps_the_limit():
    """Nothing learnt yet (a fleet's first hours): the registry's limit alone applies."""
    firing = cooling_losses(engine(), frame("f1", 0, running(20), lost_compressor()))
    assert len(firing) == 1
    assert firing["reference"].iloc[0] == LIMIT


# -- a fleet's first hours: nothing learnt, an idle rise is judged by its shape --------------

LOSS_RISE_MINUTES = 8


def lost_compressor(minutes: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A lost compressor (idle from a running coil): the coil warms faster than the limit for
    LOSS_RISE_MINUTES, then drifts slowly with the cabinet air, short of the defrost state."""
    t = np.arange(0, minutes * 60, STEP_S) / 60.0
    rate = LIMIT + 1.0
    coil = COIL_RUNNING + rate * np.minimum(t, LOSS_RISE_MINUTES)
    coil += 0.2 * np.maximum(t - LOSS_RISE_MINUTES, 0)
    assert coil.max() < DEFROST_ABOVE
    return coil, np.full(len(t), IDLE_AMPS)


def test_a_fast_defrost_in_a_fleets_first_hours_is_no_cooling_loss():
    """No device of the fleet has shown a defrost yet: the heater's warm-up is faster than the
    limit for longer than the sustain time, and it carries the coil into the defrost state."""
    assert cooling_losses(engine(), frame("f1", 0, running(20), defrost(), running(30))).empty


def test_a_first_hours_defrost_arriving_one_reading_per_file_is_no_cooling_loss():
    eng = engine()
    readings = frame("f1", 0, running(20), defrost(), running(30))
    assert all(cooling_losses(eng, readings.iloc[[i]]).empty for i in range(len(readings)))


def test_an_idle_rise_that_ends_with_the_compressor_restarting_is_no_cooling_loss():
    """Short of the defrost state, the compressor starts again: cooling is back."""
    coil, amps = lost_compressor()
    restart = (coil[: LOSS_RISE_MINUTES * 60 // STEP_S], amps[: LOSS_RISE_MINUTES * 60 // STEP_S])
    assert cooling_losses(engine(), frame("f1", 0, running(20), restart, running(30))).empty


def test_a_lost_compressor_in_a_fleets_first_hours_fires_when_its_fast_rise_ends():
    firing = cooling_losses(engine(), frame("f1", 0, running(20), lost_compressor()))
    assert len(firing) == 1
    # The rise is seen from its second reading (the rate's look-back) until LOSS_RISE_MINUTES;
    # the first reading that no longer rises fast fires, carrying the rise's span and rate.
    fired = (firing["ts"].iloc[0] - T0).total_seconds() / 60.0
    assert 20 + LOSS_RISE_MINUTES <= fired <= 20 + LOSS_RISE_MINUTES + 1.0
    assert firing["span_minutes"].iloc[0] >= SETTINGS.rule(RULE).minutes("sustain_minutes")
    assert firing["observed"].iloc[0] > LIMIT


def test_a_first_hours_lost_compressor_arriving_one_reading_per_file_fires_once():
    eng = engine()
    readings = frame("f1", 0, running(20), lost_compressor())
    fired = [i for i in range(len(readings)) if not cooling_losses(eng, readings.iloc[[i]]).empty]
    batch = cooling_losses(engine(), readings)
    assert len(fired) == 1
    assert readings["ts"].iloc[fired[0]] == batch["ts"].iloc[0]


def test_a_lost_compressor_once_defrosts_are_known_fires_at_the_sustain_time_as_before():
    """Once the cohort's defrosts are known the rule judges the rate as it always did: the
    alert comes when the rise has lasted the sustain time, not when it ends."""
    devices = [f"f{i}" for i in range(int(SETTINGS.rule(RULE).params["cohort_min_devices"]) + 1)]
    eng = engine({d: "freezer" for d in devices})
    cooling_losses(eng, *(frame(d, 0, running(20), defrost(), running(30)) for d in devices[1:]))
    coil, amps = lost_compressor()
    t = np.arange(len(coil)) * STEP_S / 60.0
    faster = COIL_RUNNING + 2 * (DEFROST_TARGET - COIL_RUNNING) / HEATER_TAU_MIN * t
    firing = cooling_losses(eng, frame(devices[0], 120, running(20), (faster, amps)))
    assert len(firing) == 1
    assert firing["reference"].iloc[0] > LIMIT  # judged against the cohort's warm-up
    sustain = SETTINGS.rule(RULE).minutes("sustain_minutes")
    fired = (firing["ts"].iloc[0] - T0).total_seconds() / 60.0 - 140
    # The streak counts from its first rate's look-back: the last running reading.
    assert fired == pytest.approx(sustain - STEP_S / 60.0)


# -- acute_pressure_loss after a defrost ----------------------------------------------------
# The compressor restarts on a coil the heater warmed above the defrost state, so the suction
# starts at that warm coil's pressure and pulls down for minutes to the device's usual running
# level (by more than the loss fraction within the window). That pull-down is no loss; a fall
# below the usual running level is, at a restart after a defrost as at any other time. The
# device runs long enough at its usual suction for the rule to learn its running average.

PRESSURE_RULE = "acute_pressure_loss"
FRACTION = float(load_contract("device_registry").column("pressure_drop_fraction").default)
SUCTION = 300.0  # the usual running suction, kPa
WARM_SUCTION = 650.0  # a +12 °C coil's pressure at the restart
HISTORY_MIN = SETTINGS.rule(PRESSURE_RULE).minutes("min_history_minutes") + 10
PULL_DOWN_TAU_MIN = 1.5


def _minutes(length: float) -> np.ndarray:
    return np.arange(0, length * 60, STEP_S) / 60.0


def suction_run(length: float) -> dict[str, np.ndarray]:
    t = _minutes(length)
    return {
        "pressure_low_side": np.full(len(t), SUCTION),
        "temperature_evaporator": np.full(len(t), COIL_RUNNING),
        "current_compressor": np.full(len(t), RUNNING_AMPS),
    }


def suction_defrost(length: float = 20) -> dict[str, np.ndarray]:
    t = _minutes(length)
    return {
        "pressure_low_side": np.full(len(t), WARM_SUCTION),
        "temperature_evaporator": _relax(COIL_RUNNING, DEFROST_TARGET, HEATER_TAU_MIN, t),
        "current_compressor": np.full(len(t), IDLE_AMPS),
    }


def suction_restart(length: float = 15, settles_at: float = SUCTION) -> dict[str, np.ndarray]:
    """The restart after the defrost: suction and coil pull down from the warm coil's level to
    ``settles_at`` (the usual running suction, or below it for a loss)."""
    t = _minutes(length)
    pull = np.exp(-t / PULL_DOWN_TAU_MIN)
    return {
        "pressure_low_side": settles_at + (WARM_SUCTION - settles_at) * pull,
        "temperature_evaporator": COIL_RUNNING + (DEFROST_TARGET - COIL_RUNNING) * pull,
        "current_compressor": np.full(len(t), RUNNING_AMPS),
    }


def suction_frame(device: str, *parts: dict[str, np.ndarray]) -> pd.DataFrame:
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(columns["pressure_low_side"])
    return pd.DataFrame(
        {
            "device_id": device,
            "ts": T0 + pd.to_timedelta(STEP_S * np.arange(n), unit="s"),
            "vibration_compressor": np.where(columns["current_compressor"] > 1, 2.0, 0.0),
            "door_open": 0.0,
            **columns,
        }
    )


def pressure_losses(
    readings: pd.DataFrame, per_file: int | None = None, history_file: bool = True
) -> pd.DataFrame:
    """The rule's episode-opening firings over ``readings``: the first HISTORY_MIN minutes in
    one file (the running history the rule learns its average from) unless ``history_file`` is
    False, the rest ``per_file`` readings a file (default: one file)."""
    eng = engine()
    first = int(HISTORY_MIN * 60 / STEP_S) if history_file else 0
    step = per_file or len(readings)
    files = [readings.iloc[:first]] if first else []
    files += [readings.iloc[i : i + step] for i in range(first, len(readings), step)]
    firings = [eng.process(*frame_arrays(f, SETTINGS.sensors)).firings for f in files]
    out = pd.concat(firings, ignore_index=True)
    return out[out["rule"] == PRESSURE_RULE]


def test_the_pull_down_after_a_defrost_falls_by_more_than_the_fraction_within_the_window():
    pull = suction_restart()["pressure_low_side"]
    window = int(SETTINGS.rule(PRESSURE_RULE).minutes("window_minutes") * 60 / STEP_S)
    settled = int(SETTINGS.rule(PRESSURE_RULE).minutes("settle_minutes") * 60 / STEP_S)
    assert (pull[settled] - pull[window]) / pull[settled] > FRACTION
    assert suction_defrost()["temperature_evaporator"].max() > DEFROST_ABOVE


def test_the_suction_pull_down_after_a_defrost_is_no_pressure_loss():
    assert pressure_losses(
        suction_frame(
            "f1", suction_run(HISTORY_MIN), suction_defrost(), suction_restart(), suction_run(10)
        )
    ).empty


def test_the_pull_down_after_a_defrost_read_one_reading_per_file_is_no_pressure_loss():
    readings = suction_frame(
        "f1", suction_run(HISTORY_MIN), suction_defrost(), suction_restart(), suction_run(10)
    )
    assert pressure_losses(readings, per_file=1).empty


def test_a_loss_at_the_restart_after_a_defrost_still_fires():
    """The suction falls to 60 % of its usual running level as the compressor restarts."""
    loss = suction_restart(settles_at=(1 - FRACTION) * SUCTION * 0.85)
    fired = pressure_losses(suction_frame("f1", suction_run(HISTORY_MIN), suction_defrost(), loss))
    assert len(fired) == 1
    assert fired["reference"].iloc[0] == pytest.approx(SUCTION)  # the usual running level


def test_a_loss_at_the_restart_after_a_defrost_fires_one_reading_per_file():
    loss = suction_restart(settles_at=(1 - FRACTION) * SUCTION * 0.85)
    readings = suction_frame("f1", suction_run(HISTORY_MIN), suction_defrost(), loss)
    assert len(pressure_losses(readings, per_file=1)) == 1


def test_without_a_running_history_the_restart_after_a_defrost_is_not_judged():
    """No running average yet (the device's first hour, no cohort): nothing tells the
    restart's pull-down from the warm coil's pressure from a loss, so the stretch after the
    restart is not judged (R290 and R717 fleets paged such pull-downs as leaks in their first
    hours)."""
    readings = suction_frame(
        "f1", suction_run(10), suction_defrost(), suction_restart(), suction_run(10)
    )
    assert pressure_losses(readings, history_file=False).empty


def test_without_a_running_history_a_stretch_with_no_start_seen_is_judged_as_before():
    """The first readings of a device that is already running: no start seen, nothing capped,
    a fall by more than the fraction fires against the level it fell from."""
    t = np.arange(0, 10 * 60, STEP_S) / 60.0
    fall = {
        "pressure_low_side": np.where(t < 5, SUCTION, SUCTION * (1 - FRACTION) * 0.9),
        "temperature_evaporator": np.full(len(t), COIL_RUNNING),
        "current_compressor": np.full(len(t), RUNNING_AMPS),
    }
    fired = pressure_losses(suction_frame("f1", fall), history_file=False)
    assert len(fired) == 1
    assert fired["reference"].iloc[0] == pytest.approx(SUCTION)
