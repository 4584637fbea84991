"""A defrost is a stay of the idle coil in the contract's defrost state, not a crossing of its
level: a medium-temperature case whose thermostat cuts in at about ``defrost_above`` crosses
it for a reading in ordinary off-cycles, and those crossings taught the rule that the case's
defrosts warm slower than the limit, so its real defrosts paged as total cooling losses. And at
a slow cadence (5-minute readings) a defrost's heating lies within one reading interval, whose
mean rate depends on when the heater started in it.

Devices are built from per-reading coil values and running states. Thresholds come from
contracts/device_registry.yaml, the defrost level from contracts/sensor_readings.yaml.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.streaming.config import StreamingSettings
from refrig_assets.streaming.engine import DeviceThresholds, StreamingEngine
from refrig_assets.streaming.state import StreamState
from refrig_assets_tests.streaming.test_streaming_hidden_cycle import (
    IDLE,
    LIMIT,
    RULE,
    RUN,
    T0,
    cooling_losses,
    engine,
    frame,
    settings_at,
)

DEFROST_ABOVE = float(
    load_contract("sensor_readings").column("temperature_evaporator").extra["defrost_above"]
)


def engine_from(settings: StreamingSettings, state: StreamState | None) -> StreamingEngine:
    """An engine over a saved state (an empty one without it)."""
    return StreamingEngine(
        settings, state or StreamState.empty(settings), DeviceThresholds(None, settings)
    )


def defrosts_seen(eng: StreamingEngine) -> float:
    """How many defrosts the rule has counted for the device (its warm-up record)."""
    return float(eng.state.averages[RULE].minutes[0, 1])


# -- a medium-temperature case at 30 s -------------------------------------------------------
STEP_S = 30
MT_RUNNING = -7.0
# An ordinary off-cycle: the idle coil warms slower than the limit (0.75 K a reading) to the
# thermostat's cut-in, one reading just above the defrost level, and the compressor restarts.
HOVER = [MT_RUNNING + 0.75 * k for k in range(1, 16)] + [DEFROST_ABOVE + 0.3]
PULL_DOWN = [2.0, -2.0, -5.0] + [MT_RUNNING] * 17
RUNNING_20 = [MT_RUNNING] * 20


def heater(start: float, target: float = 20.0, tau_min: float = 4.0, minutes: int = 20):
    """An idle coil heated from ``start`` towards ``target`` (faster than the limit for its
    first minutes)."""
    t = np.arange(1, minutes * 60 // STEP_S + 1) * STEP_S / 60.0
    return list(target + (start - target) * np.exp(-t / tau_min))


def mt_case() -> tuple[list[float], list[int]]:
    """Two ordinary off-cycles that cross the defrost level for a reading, then a defrost."""
    coil = RUNNING_20 + HOVER + PULL_DOWN + HOVER + PULL_DOWN
    states = [RUN] * 20 + ([IDLE] * len(HOVER) + [RUN] * len(PULL_DOWN)) * 2
    defrost = heater(MT_RUNNING)
    coil += defrost + PULL_DOWN
    states += [IDLE] * len(defrost) + [RUN] * len(PULL_DOWN)
    return coil, states


def test_the_case_is_built_as_described():
    coil, states = mt_case()
    idle = np.array(states) == IDLE
    above = np.array(coil) > DEFROST_ABOVE
    per_minute = np.array(HOVER[2:]) - np.array(HOVER[:-2])  # the rule's 1-minute rates
    assert (per_minute <= LIMIT).all() and HOVER[-1] > DEFROST_ABOVE > HOVER[-2]
    # The defrost heats faster than the limit for longer than the sustain time, and stays in
    # the defrost state for minutes.
    defrost = np.array(heater(MT_RUNNING))
    fast = np.diff(np.r_[MT_RUNNING, defrost]) * 60 / STEP_S > LIMIT
    assert fast[:8].all()
    assert (defrost > DEFROST_ABOVE).sum() * STEP_S / 60 > 10
    assert (idle & above).sum() == 2 + (defrost > DEFROST_ABOVE).sum()


def test_off_cycles_crossing_the_defrost_level_teach_no_defrost(monkeypatch):
    """The case's first real defrost is judged as a defrost (nothing learnt: by its shape, it
    ends in the defrost state), not against a "defrosts slower than the limit" learnt from its
    off-cycles (which paged it at the limit)."""
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = mt_case()
    off_cycles = 20 + 2 * (len(HOVER) + len(PULL_DOWN))
    eng = engine(settings)
    cooling_losses(eng, frame(settings, STEP_S, coil[:off_cycles], states[:off_cycles]))
    after_off_cycles = defrosts_seen(eng)
    later = frame(settings, STEP_S, coil[off_cycles:], states[off_cycles:], start=off_cycles)
    assert cooling_losses(eng, later).empty
    assert after_off_cycles == 0
    assert defrosts_seen(eng) == 1


def test_a_defrost_stay_read_one_reading_per_file_is_learnt_alike(monkeypatch, tmp_path):
    """The stay in the defrost state is carried across files and through the saved state:
    one reading per file (the state saved and loaded after each) learns what one batch does."""
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = mt_case()
    whole = engine(settings)
    cooling_losses(whole, frame(settings, STEP_S, coil, states))
    path = tmp_path / "state"
    for i, (c, s) in enumerate(zip(coil, states, strict=True)):
        eng = engine_from(settings, StreamState.load(path, settings) if path.exists() else None)
        assert cooling_losses(eng, frame(settings, STEP_S, [c], [s], start=i)).empty
        eng.state.save(path)
    kept = StreamState.load(path, settings).averages[RULE]
    learnt = whole.state.averages[RULE]
    for part in ("total", "weight", "minutes"):
        np.testing.assert_allclose(getattr(kept, part), getattr(learnt, part))
    assert defrosts_seen(whole) == 1


def test_a_stay_shorter_than_the_sustain_time_is_no_defrost(monkeypatch):
    settings = settings_at(STEP_S, monkeypatch)
    sustain = settings.rule(RULE).minutes("sustain_minutes")
    readings = int(sustain * 60 / STEP_S)  # in the state for (readings - 1) intervals
    short = HOVER[:-1] + [DEFROST_ABOVE + 0.3] * readings
    eng = engine(settings)
    coil = RUNNING_20 + short + PULL_DOWN
    states = [RUN] * 20 + [IDLE] * len(short) + [RUN] * len(PULL_DOWN)
    cooling_losses(eng, frame(settings, STEP_S, coil, states))
    assert defrosts_seen(eng) == 0
    longer = HOVER[:-1] + [DEFROST_ABOVE + 0.3] * (readings + 1)
    eng = engine(settings)
    coil = RUNNING_20 + longer + PULL_DOWN
    states = [RUN] * 20 + [IDLE] * len(longer) + [RUN] * len(PULL_DOWN)
    cooling_losses(eng, frame(settings, STEP_S, coil, states))
    assert defrosts_seen(eng) == 1


# -- 5-minute readings -----------------------------------------------------------------------
SLOW_S = 300
FREEZER = -30.0
RUNNING_30 = [FREEZER] * 6


def slow_freezer(entry: float) -> tuple[list[float], list[int]]:
    """A freezer read every 5 minutes: a defrost whose heating lies in one interval (coil
    -30 -> +6 degC, 7.2 K/min), then, an hour later, another entering at ``entry``."""
    defrost = [6.0, 11.5, 12.0, 12.0]
    restart = [0.0, -20.0] + [FREEZER] * 10
    coil = RUNNING_30 + defrost + restart + [FREEZER - 1.0, entry, 11.5, 12.0, 12.0] + restart
    states = [RUN] * 6 + [IDLE] * 4 + [RUN] * 12 + [RUN] + [IDLE] * 4 + [RUN] * 12
    return coil, states


def test_a_slow_fleets_defrost_faster_than_the_one_learnt_is_no_cooling_loss(monkeypatch):
    """The second defrost's interval holds more of its heating (8 K/min against the first's
    7.2): on a device whose defrosts are known to outpace the limit it is that defrost."""
    settings = settings_at(SLOW_S, monkeypatch)
    coil, states = slow_freezer(entry=FREEZER - 1.0 + 5 * 8.0)
    eng = engine(settings)
    first = 22  # the first defrost and the restart after it
    assert cooling_losses(eng, frame(settings, SLOW_S, coil[:first], states[:first])).empty
    assert defrosts_seen(eng) == 1
    assert cooling_losses(
        eng, frame(settings, SLOW_S, coil[first:], states[first:], start=first)
    ).empty


def test_a_slow_fleets_fast_rise_on_a_device_with_slow_defrosts_fires_as_before(monkeypatch):
    """Defrosts known slower than the limit (0): a one-interval rise into the defrost state
    is no defrost of this device, and fires at that reading."""
    settings = settings_at(SLOW_S, monkeypatch)
    slow = [FREEZER + 6.5 * k for k in range(1, 7)] + [12.0, 12.0]  # 1.3 K/min
    assert all(np.diff(slow[:6]) / 5 <= LIMIT) and slow[5] > DEFROST_ABOVE
    lost = [8.0, 20.0, 26.0]
    restart = [0.0, -20.0] + [FREEZER] * 10
    coil = RUNNING_30 + slow + restart + lost
    states = [RUN] * 6 + [IDLE] * len(slow) + [RUN] * len(restart) + [IDLE] * len(lost)
    eng = engine(settings)
    before = len(coil) - len(lost)
    assert cooling_losses(eng, frame(settings, SLOW_S, coil[:before], states[:before])).empty
    assert defrosts_seen(eng) == 1
    rest = frame(settings, SLOW_S, coil[before:], states[before:], start=before)
    firing = cooling_losses(eng, rest)
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(seconds=SLOW_S * before)
    assert firing["reference"].iloc[0] == LIMIT
