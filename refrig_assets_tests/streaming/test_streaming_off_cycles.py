"""total_cooling_loss in a fleet's first hours, before any defrost warm-up is known: an idle
rise is held and judged by its shape when it ends, and one that ends short of the defrost state
with the compressor still idle reads as a lost compressor. An ordinary off-cycle of a
medium-temperature case can have that shape too (the coil warms faster than the limit for
minutes after the stop, then slows towards the cabinet air); only the restart tells it. So the
firing waits until the compressor has stayed off longer than in any ordinary off-cycle the
device has shown.

Readings every 30 s of one device (test_streaming_hidden_cycle's helpers), with nothing learnt.
"""

from __future__ import annotations

import pandas as pd
import pytest

from refrig_assets.streaming.engine import StreamingEngine
from refrig_assets.streaming.state import StreamState
from refrig_assets_tests.streaming.test_streaming_defrost_stay import DEFROST_ABOVE, engine_from
from refrig_assets_tests.streaming.test_streaming_hidden_cycle import (
    IDLE,
    LIMIT,
    RUN,
    T0,
    cooling_losses,
    engine,
    frame,
    settings_at,
)

STEP_S = 30
PER_MINUTE = 60 // STEP_S
COLD = -10.0
RUNNING_10 = [COLD] * (10 * PER_MINUTE)
PULL_DOWN = [COLD + 3.0, COLD + 1.0] + [COLD] * 8


def slow_off_cycle(minutes: int) -> list[float]:
    """An ordinary off-cycle whose coil warms at half the limit."""
    return [COLD + 0.5 * LIMIT * (k + 1) / PER_MINUTE for k in range(minutes * PER_MINUTE)]


def fast_then_slow(minutes: int) -> list[float]:
    """The coil warms faster than the limit for 4 minutes after the stop, then slowly,
    short of the defrost state: an off-cycle (followed by a restart) or a lost compressor
    (followed by nothing)."""
    fast = [COLD + 1.25 * LIMIT * (k + 1) / PER_MINUTE for k in range(4 * PER_MINUTE)]
    slow = [fast[-1] + 0.05 * (k + 1) for k in range((minutes - 4) * PER_MINUTE)]
    assert max(fast + slow) < DEFROST_ABOVE
    return fast + slow


def device(*parts: tuple[list[float], int]) -> tuple[list[float], list[int]]:
    coil: list[float] = []
    states: list[int] = []
    for values, state in parts:
        coil += values
        states += [state] * len(values)
    return coil, states


SEEN_OFF_CYCLE_MIN = 10
FIRST_HOUR = (
    (RUNNING_10, RUN),
    (slow_off_cycle(SEEN_OFF_CYCLE_MIN), IDLE),
    (PULL_DOWN, RUN),
)


def losses(eng: StreamingEngine, coil: list[float], states: list[int], per_file: int | None):
    settings = eng.settings
    step = per_file or len(coil)
    out = [
        cooling_losses(eng, frame(settings, STEP_S, coil[i : i + step], states[i : i + step], i))
        for i in range(0, len(coil), step)
    ]
    return pd.concat(out, ignore_index=True)


def first_idle_after(states: list[int], minutes: float) -> pd.Timestamp:
    """The first reading of the last idle stretch idle for longer than ``minutes``."""
    start = max(i for i, s in enumerate(states) if s == IDLE and states[i - 1] == RUN)
    k = int(minutes * PER_MINUTE) + 1
    return T0 + pd.Timedelta(seconds=STEP_S * (start + k))


@pytest.mark.parametrize("per_file", [None, 1])
def test_an_off_cycle_shorter_than_one_seen_is_no_lost_compressor(monkeypatch, per_file):
    """The prop30 shape (R290 case, 30 s): a fast first rise in an 8-minute off-cycle after a
    10-minute one was seen."""
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = device(*FIRST_HOUR, (fast_then_slow(8), IDLE), (PULL_DOWN, RUN))
    assert losses(engine(settings), coil, states, per_file).empty


@pytest.mark.parametrize("per_file", [None, 1])
def test_a_lost_compressor_fires_once_idle_longer_than_any_off_cycle_seen(monkeypatch, per_file):
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = device(*FIRST_HOUR, (fast_then_slow(40), IDLE))
    fired = losses(engine(settings), coil, states, per_file)
    assert fired["ts"].tolist() == [first_idle_after(states, SEEN_OFF_CYCLE_MIN)]
    assert fired["observed"].iloc[0] > LIMIT  # the rise's rate, not the idle coil's


@pytest.mark.parametrize("per_file", [None, 1])
def test_with_no_off_cycle_seen_a_lost_compressor_fires_where_it_did(monkeypatch, per_file):
    """The first stop of the readings: where the rise ends (its 4 fast minutes, then the first
    reading that no longer outpaces the limit), as before."""
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = device((RUNNING_10, RUN), (fast_then_slow(40), IDLE))
    fired = losses(engine(settings), coil, states, per_file)
    ended = len(RUNNING_10) + 4 * PER_MINUTE
    assert fired["ts"].tolist() == [T0 + pd.Timedelta(seconds=STEP_S * ended)]
    assert fired["span_minutes"].iloc[0] == pytest.approx(4.0, abs=0.6)


def test_an_idle_stretch_that_entered_the_defrost_state_is_no_off_cycle(monkeypatch):
    """A 30-minute defrost seen before does not make a later lost compressor wait 30 minutes."""
    settings = settings_at(STEP_S, monkeypatch)
    defrost = [DEFROST_ABOVE + 5.0] * (30 * PER_MINUTE)
    coil, states = device(
        (RUNNING_10, RUN), (defrost, IDLE), (PULL_DOWN, RUN), (fast_then_slow(40), IDLE)
    )
    seen = engine(settings)
    fired = losses(seen, coil, states, None)
    # The defrost's heater is held as a rise too; it entered the defrost state, so it is none.
    ended = len(coil) - 40 * PER_MINUTE + 4 * PER_MINUTE
    assert fired["ts"].tolist() == [T0 + pd.Timedelta(seconds=STEP_S * ended)]


def test_a_firing_waiting_for_the_stretch_to_outlast_survives_a_saved_state(monkeypatch, tmp_path):
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = device(*FIRST_HOUR, (fast_then_slow(40), IDLE))
    cut = len(coil) - 30 * PER_MINUTE  # 10 minutes into the idle stretch: the rise has ended
    first = engine(settings)
    assert losses(first, coil[:cut], states[:cut], None).empty
    first.state.save(tmp_path / "state")
    resumed = engine_from(settings, StreamState.load(tmp_path / "state", settings))
    fired = cooling_losses(resumed, frame(settings, STEP_S, coil[cut:], states[cut:], start=cut))
    assert fired["ts"].tolist() == [first_idle_after(states, SEEN_OFF_CYCLE_MIN)]


def test_devices_in_one_batch_keep_their_own_off_cycles(monkeypatch):
    """One batch of two devices: the one that has shown a 10-minute off-cycle waits, the one
    that has not fires where the rise ends; neither borrows the other's."""
    settings = settings_at(STEP_S, monkeypatch)
    coil_a, states_a = device(*FIRST_HOUR, (fast_then_slow(40), IDLE))
    coil_b, states_b = device((RUNNING_10, RUN), (fast_then_slow(40), IDLE))
    a = frame(settings, STEP_S, coil_a, states_a).assign(device_id="a")
    b = frame(settings, STEP_S, coil_b, states_b).assign(device_id="b")
    fired = cooling_losses(engine(settings), pd.concat([a, b], ignore_index=True))
    ended_b = T0 + pd.Timedelta(seconds=STEP_S * (len(RUNNING_10) + 4 * PER_MINUTE))
    assert dict(zip(fired["device_id"], fired["ts"], strict=True)) == {
        "a": first_idle_after(states_a, SEEN_OFF_CYCLE_MIN),
        "b": ended_b,
    }
