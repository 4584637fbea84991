"""total_cooling_loss in a fleet's first hours: a device that has shown no ordinary off-cycle yet
waits, before an idle rise unlike a defrost pages, as long as its cohort's devices typically
stay off (the median of each one's longest off-cycle, from ``cohort_min_devices`` devices that
have shown one). Its first off-cycle, whose coil warms fast and then slows, ends in a restart
before that and pages nothing; a lost compressor still pages, once idle longer than that.

Readings every 30 s (test_streaming_off_cycles' devices): a cohort whose devices have each
shown a 10-minute off-cycle, then a device of it that has shown none.
"""

from __future__ import annotations

import pandas as pd
import pytest

from refrig_assets.streaming.engine import DeviceThresholds, StreamingEngine
from refrig_assets.streaming.state import StreamState
from refrig_assets_tests.streaming.test_streaming_off_cycles import (
    FIRST_HOUR,
    IDLE,
    PULL_DOWN,
    RUN,
    RUNNING_10,
    SEEN_OFF_CYCLE_MIN,
    STEP_S,
    T0,
    cooling_losses,
    device,
    fast_then_slow,
    first_idle_after,
    frame,
    settings_at,
)

RULE = "total_cooling_loss"
FIRST_HOUR_READINGS = len(device(*FIRST_HOUR)[0])


def cohort_engine(settings, devices: int) -> StreamingEngine:
    """An engine whose registry puts ``devices`` devices and "new" in one cohort, after the
    cohort's devices have each shown the first hour (a 10-minute off-cycle)."""
    names = [f"c{i}" for i in range(devices)]
    registry = pd.DataFrame({"device_id": [*names, "new"], "site_id": "s1", "cohort": "mt"})
    eng = StreamingEngine(
        settings, StreamState.empty(settings), DeviceThresholds(registry, settings)
    )
    coil, states = device(*FIRST_HOUR)
    taught = [frame(settings, STEP_S, coil, states).assign(device_id=n) for n in names]
    assert cooling_losses(eng, pd.concat(taught, ignore_index=True)).empty
    return eng


def new_device(settings, coil: list[float], states: list[int]) -> pd.DataFrame:
    """The device that has shown no off-cycle, right after the cohort's first hour."""
    return frame(settings, STEP_S, coil, states, start=FIRST_HOUR_READINGS).assign(device_id="new")


def enough(settings) -> int:
    return int(settings.rule(RULE).params["cohort_min_devices"])


@pytest.mark.parametrize("per_file", [None, 1])
def test_a_first_off_cycle_shorter_than_the_cohorts_is_no_lost_compressor(monkeypatch, per_file):
    settings = settings_at(STEP_S, monkeypatch)
    eng = cohort_engine(settings, enough(settings))
    coil, states = device((RUNNING_10, RUN), (fast_then_slow(8), IDLE), (PULL_DOWN, RUN))
    batch = new_device(settings, coil, states)
    step = per_file or len(batch)
    found = [cooling_losses(eng, batch.iloc[i : i + step]) for i in range(0, len(batch), step)]
    assert all(f.empty for f in found)


def test_a_lost_compressor_fires_once_idle_longer_than_the_cohorts_off_cycles(monkeypatch):
    settings = settings_at(STEP_S, monkeypatch)
    eng = cohort_engine(settings, enough(settings))
    coil, states = device((RUNNING_10, RUN), (fast_then_slow(40), IDLE))
    fired = cooling_losses(eng, new_device(settings, coil, states))
    at = first_idle_after(states, SEEN_OFF_CYCLE_MIN)
    assert fired["ts"].tolist() == [at + pd.Timedelta(seconds=STEP_S * FIRST_HOUR_READINGS)]


def test_too_few_devices_with_off_cycles_leave_the_firing_where_it_was(monkeypatch):
    """With fewer than cohort_min_devices that have shown an off-cycle, it fires where its
    rise ends, as before."""
    settings = settings_at(STEP_S, monkeypatch)
    eng = cohort_engine(settings, enough(settings) - 1)
    coil, states = device((RUNNING_10, RUN), (fast_then_slow(8), IDLE), (PULL_DOWN, RUN))
    fired = cooling_losses(eng, new_device(settings, coil, states))
    ended = FIRST_HOUR_READINGS + len(RUNNING_10) + 4 * 60 // STEP_S
    assert fired["ts"].tolist() == [T0 + pd.Timedelta(seconds=STEP_S * ended)]
