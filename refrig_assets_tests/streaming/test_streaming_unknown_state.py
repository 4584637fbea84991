"""total_cooling_loss on a device that reports no compressor current (a cold store without a
current sensor): its readings' running state is unknown, so a rise can be a defrost as well as
a lost compressor. Where the defrost warm-up of its cohort is known, such a rise is judged by
its shape, as an idle rise before any warm-up is known (one that carries the coil into the
contract's defrost state is a defrost; one whose fast rise ends short of it pages where it
ends), and it still pages at once where it outpaces the cohort's defrosts. Where no warm-up is
known (a fleet without any current sensor), the limit alone applies, as before.

A cohort of devices with a current sensor that defrost (test_streaming_defrost's heater), and
one without, every 30 s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets_tests.streaming.test_streaming_defrost import (
    COIL_RUNNING,
    DEFROST_ABOVE,
    LIMIT,
    RULE,
    SETTINGS,
    STEP_S,
    T0,
    cooling_losses,
    defrost,
    engine,
    frame,
    running,
)

PER_MINUTE = 60 // STEP_S
COHORT = [f"f{i}" for i in range(int(SETTINGS.rule(RULE).params["cohort_min_devices"]))]
BLIND = "n0"
START_MIN = 120  # the device without current, after its cohort's defrosts
RISE_AT = 20 * PER_MINUTE  # its rise begins after 20 running minutes


def ramp(rate: float, minutes: int, then: float = 0.0, after: int = 0) -> np.ndarray:
    """A coil rising from the running level at ``rate`` K/min, then at ``then`` K/min."""
    fast = COIL_RUNNING + rate * np.arange(1, minutes * PER_MINUTE + 1) / PER_MINUTE
    slow = fast[-1] + then * np.arange(1, after * PER_MINUTE + 1) / PER_MINUTE
    return np.r_[fast, slow]


def without_current(*parts: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    return frame(BLIND, START_MIN, *parts).assign(current_compressor=np.nan)


def cohort_engine():
    eng = engine({d: "freezer" for d in [*COHORT, BLIND]})
    taught = [frame(d, 0, running(20), defrost(), running(30)) for d in COHORT]
    assert cooling_losses(eng, *taught).empty
    return eng


def warm_up(eng) -> float:
    """The defrost warm-up the cohort has taught (the fastest 1-minute rise of the heater)."""
    return float(eng._defrost_warm_up(SETTINGS.rule(RULE), np.zeros(len(eng.state), int))[0])


def at_reading(i: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=START_MIN) + pd.Timedelta(seconds=STEP_S * i)


def rates(rise: np.ndarray) -> np.ndarray:
    """The rule's 1-minute rate at each reading of the rise (after 20 running minutes)."""
    coil = np.r_[np.full(RISE_AT, COIL_RUNNING), rise]
    return np.r_[np.full(PER_MINUTE, np.nan), (coil[PER_MINUTE:] - coil[:-PER_MINUTE])]


def at_sustain_time(rise: np.ndarray, limit: float) -> pd.Timestamp:
    """The reading whose streak of rates above ``limit`` covers the sustain time, counted from
    the first rate's reference (a minute before the first rising reading)."""
    first = int(np.flatnonzero(rates(rise) > limit)[0])
    sustain = int(SETTINGS.rule(RULE).minutes("sustain_minutes") * PER_MINUTE)
    return at_reading(first - PER_MINUTE + sustain)


def test_the_cohort_teaches_a_warm_up_faster_than_the_limit():
    assert warm_up(cohort_engine()) > 2 * LIMIT


def test_a_defrost_of_a_device_without_a_current_sensor_is_no_cooling_loss():
    coil, _ = defrost()
    assert coil.max() > DEFROST_ABOVE
    eng = cohort_engine()
    found = cooling_losses(eng, without_current(running(20), defrost(), running(30)))
    assert found.empty


def lost(rate: float) -> np.ndarray:
    """A lost compressor: the coil rises at ``rate`` for 5 minutes, then drifts slowly."""
    return ramp(rate, 5, then=0.2, after=20)


def test_a_slow_lost_compressor_without_a_current_sensor_fires_where_its_rise_ends():
    rise = lost(1.5 * LIMIT)
    assert rise.max() < DEFROST_ABOVE
    eng = cohort_engine()
    assert 1.5 * LIMIT < warm_up(eng)
    found = cooling_losses(eng, without_current(running(20), (rise, np.zeros(len(rise)))))
    assert len(found) == 1
    # The first reading of the rise whose rate is back within the limit.
    r = rates(rise)
    ends = int(np.flatnonzero((r <= LIMIT) & (np.arange(len(r)) > RISE_AT + PER_MINUTE))[0])
    assert found["ts"].iloc[0] == at_reading(ends)
    assert found["observed"].iloc[0] > LIMIT


@pytest.mark.parametrize("blind", [False, True])
def test_a_lost_compressor_faster_than_the_cohorts_defrosts_fires_at_the_sustain_time(blind):
    eng = cohort_engine()
    rate = 1.5 * warm_up(eng)
    rise = ramp(rate, 6)
    assert rise.max() > DEFROST_ABOVE
    parts = (running(20), (rise, np.zeros(len(rise))))
    batch = without_current(*parts) if blind else frame(BLIND, START_MIN, *parts)
    found = cooling_losses(eng, batch)
    assert len(found) == 1
    # Blind, the streak is counted at the limit (as before) and fires at the first reading
    # that also outpaces the cohort's defrosts; idle, every rate must outpace them.
    assert found["ts"].iloc[0] == at_sustain_time(rise, LIMIT if blind else warm_up(eng))


def test_without_any_warm_up_known_the_limit_alone_applies_as_before():
    """A fleet whose devices report no current learns no warm-up: a rise faster than the limit
    fires at the sustain time."""
    eng = engine({BLIND: "freezer"})
    rise = lost(1.5 * LIMIT)
    found = cooling_losses(eng, without_current(running(20), (rise, np.zeros(len(rise)))))
    assert len(found) == 1
    assert found["ts"].iloc[0] == at_sustain_time(rise, LIMIT)
