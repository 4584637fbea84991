"""Defrosts that warm the coil fast (electric heaters, hot gas) are no total cooling loss.

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
