"""acute_pressure_loss after an ordinary compressor start: a large plant's suction pulls down
from the idle (equalised) pressure to its running level for minutes (a 10 s R717 fleet: about
5 minutes, by more than the loss fraction once the settle time is over). That pull-down is no
loss; a fall below the device's usual running level is, at a start as at any other time.

Readings every 30 s (test_streaming_defrost's helpers): the device first runs long enough at its
usual suction for the rule to learn its running average, then cycles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.streaming.replay import frame_arrays
from refrig_assets_tests.streaming.test_streaming_defrost import (
    COIL_RUNNING,
    FRACTION,
    HISTORY_MIN,
    IDLE_AMPS,
    PRESSURE_RULE,
    RUNNING_AMPS,
    SETTINGS,
    STEP_S,
    SUCTION,
    engine,
    pressure_losses,
    suction_frame,
    suction_run,
)

IDLE_SUCTION = 1.8 * SUCTION  # the suction equalised during an off-cycle
START_TAU_MIN = 2.5


def off_cycle(length: float = 15) -> dict[str, np.ndarray]:
    """Idle, the suction rising to the equalised level, the coil still cold."""
    t = np.arange(0, length * 60, STEP_S) / 60.0
    return {
        "pressure_low_side": IDLE_SUCTION + (SUCTION - IDLE_SUCTION) * np.exp(-t / 2.0),
        "temperature_evaporator": np.full(len(t), COIL_RUNNING + 5.0),
        "current_compressor": np.full(len(t), IDLE_AMPS),
    }


def start(length: float = 15, settles_at: float = SUCTION) -> dict[str, np.ndarray]:
    """An ordinary start: the suction pulls down from the idle level to ``settles_at``."""
    t = np.arange(0, length * 60, STEP_S) / 60.0
    pull = np.exp(-t / START_TAU_MIN)
    return {
        "pressure_low_side": settles_at + (IDLE_SUCTION - settles_at) * pull,
        "temperature_evaporator": np.full(len(t), COIL_RUNNING),
        "current_compressor": np.full(len(t), RUNNING_AMPS),
    }


def test_a_large_plants_start_pulls_down_by_more_than_the_fraction_after_the_settle():
    pull = start()["pressure_low_side"]
    window = int(SETTINGS.rule(PRESSURE_RULE).minutes("window_minutes") * 60 / STEP_S)
    settled = int(SETTINGS.rule(PRESSURE_RULE).minutes("settle_minutes") * 60 / STEP_S)
    assert (pull[settled] - pull[settled + window]) / pull[settled] > FRACTION
    assert pull[-1] == pytest.approx(SUCTION, rel=0.01)


def test_the_pull_down_after_an_ordinary_start_is_no_pressure_loss():
    readings = suction_frame("c1", suction_run(HISTORY_MIN), off_cycle(), start(), off_cycle())
    assert pressure_losses(readings).empty


def test_the_pull_down_after_a_start_read_one_reading_per_file_is_no_pressure_loss():
    readings = suction_frame("c1", suction_run(HISTORY_MIN), off_cycle(), start(), off_cycle())
    assert pressure_losses(readings, per_file=1).empty


@pytest.mark.parametrize("per_file", [None, 1])
def test_a_start_before_any_running_level_is_known_is_no_pressure_loss(per_file):
    """A device's first start in the readings (a fleet's first minutes, a cohort too small
    to lend a level): its pull-down cannot be told from a loss, so it is not judged."""
    readings = suction_frame("c1", off_cycle(), start(), off_cycle(), start())
    assert pressure_losses(readings, per_file=per_file, history_file=False).empty


@pytest.mark.parametrize("per_file", [None, 1])
def test_a_loss_at_an_ordinary_start_still_fires(per_file):
    """The suction falls to about 60 % of its usual running level as the compressor starts:
    one firing, judged from that level, in one file or one reading per file (there the
    average has folded in the readings of the files before, the pull-down's first minutes)."""
    loss = start(settles_at=(1 - FRACTION) * SUCTION * 0.85)
    readings = suction_frame("c1", suction_run(HISTORY_MIN), off_cycle(), loss)
    fired = pressure_losses(readings, per_file=per_file)
    assert fired["reference"].tolist() == [pytest.approx(SUCTION, rel=0.02)]


def test_a_loss_while_running_steadily_is_judged_as_before():
    """Within a stretch that began before the readings at hand (no start seen), nothing is
    capped: a fall by more than the fraction fires against the level it fell from."""
    t = np.arange(0, 10 * 60, STEP_S) / 60.0
    high = 1.2 * SUCTION
    fall = {
        "pressure_low_side": np.where(t < 5, high, high * (1 - FRACTION) * 0.95),
        "temperature_evaporator": np.full(len(t), COIL_RUNNING),
        "current_compressor": np.full(len(t), RUNNING_AMPS),
    }
    fired = pressure_losses(suction_frame("c1", suction_run(HISTORY_MIN), fall))
    assert len(fired) == 1
    assert fired["reference"].iloc[0] == pytest.approx(high)


FEW_MINUTES = 10.0  # of running, fewer than the rule's min_history_minutes


def losses_after_a_few_running_minutes(*parts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Firings over a file of FEW_MINUTES running at the usual suction, then ``parts`` in a
    second file: the device has shown its running level, too briefly for a trusted average."""
    readings = suction_frame("c1", suction_run(FEW_MINUTES), *parts)
    first = int(FEW_MINUTES * 60 / STEP_S)
    eng = engine()
    files = [readings.iloc[:first], readings.iloc[first:]]
    out = pd.concat([eng.process(*frame_arrays(f, SETTINGS.sensors)).firings for f in files])
    return out[out["rule"] == PRESSURE_RULE]


def test_few_running_minutes_are_enough_to_tell_a_start_from_a_loss():
    assert FEW_MINUTES < SETTINGS.rule(PRESSURE_RULE).minutes("min_history_minutes")
    assert losses_after_a_few_running_minutes(off_cycle(), start(), off_cycle()).empty
    loss = start(settles_at=(1 - FRACTION) * SUCTION * 0.85)
    fired = losses_after_a_few_running_minutes(off_cycle(), loss)
    assert fired["reference"].tolist() == [pytest.approx(SUCTION)]
