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
    t = np.arange(0, 10 * 60, STEP_S) / 60.0
    idle_rise = (COIL_RUNNING + (LIMIT + 1.0) * t, np.full(len(t), IDLE_AMPS))
    firing = cooling_losses(engine(), frame("f1", 0, running(20), idle_rise))
    assert len(firing) == 1
    assert firing["reference"].iloc[0] == LIMIT
