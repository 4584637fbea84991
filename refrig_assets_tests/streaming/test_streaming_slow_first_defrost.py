"""total_cooling_loss at 5-minute readings: a device's first defrost whose heating lies in one
reading interval, judged by its cohort's defrosts.

A one-interval rise into the defrost state says nothing of the heater's pace: its mean rate
depends on when in the interval the heater started. A medium-temperature case's defrosts read
so fall on either side of the limit, and where most of its cohort's devices have shown only
slower ones (the cohort's typical warm-up is 0), a case's first defrost that happens to read
faster paged as a lost compressor. Once a device of the cohort has shown a faster defrost
without the rule paging it, such a rise is read as the defrost it ends in. A rise the rule
paged is no such witness (a lost compressor's coil also stays in the defrost state, so it is
learnt as a defrost), and a cohort whose defrosts all read slower still pages at once.

Cohort devices are taught in one batch (nothing known yet: their defrosts are judged by their
shape and page nothing), then a device of the cohort that has shown no defrost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.streaming.engine import DeviceThresholds, StreamingEngine
from refrig_assets.streaming.state import StreamState
from refrig_assets_tests.streaming.test_streaming_defrost_stay import DEFROST_ABOVE
from refrig_assets_tests.streaming.test_streaming_hidden_cycle import (
    IDLE,
    LIMIT,
    RULE,
    RUN,
    T0,
    cooling_losses,
    frame,
    settings_at,
)

STEP_S = 300
MT_RUNNING = -6.0
RUNNING = [MT_RUNNING] * 6
RESTART = [0.0, -4.0] + [MT_RUNNING] * 6
# A defrost read every 5 minutes: the heating of the first interval carries the coil from the
# running level to ``entry``, then the heater holds it at its termination temperature.
PLATEAU = [11.4, 12.0, 12.0]
# A defrost whose heating spreads over intervals, each slower than the limit.
SLOW = [MT_RUNNING + 5 * 1.3 * k for k in range(1, 3)] + PLATEAU
FAST_ENTRY = MT_RUNNING + 5 * (LIMIT + 0.8)
TAUGHT = len(RUNNING) + len(SLOW) + len(RESTART)


def case(heating: list[float]) -> tuple[list[float], list[int]]:
    """A running case, a defrost (idle) and the restart after it."""
    coil = RUNNING + heating + RESTART
    states = [RUN] * len(RUNNING) + [IDLE] * len(heating) + [RUN] * len(RESTART)
    return coil, states


def fast() -> list[float]:
    return [FAST_ENTRY, *PLATEAU]


def cohort_engine(settings, slow: int, fast_ones: int) -> StreamingEngine:
    """An engine whose registry puts the taught devices and "new" in one cohort."""
    names = [f"c{i}" for i in range(slow + fast_ones)]
    registry = pd.DataFrame({"device_id": [*names, "new"], "site_id": "s1", "cohort": "mt"})
    return StreamingEngine(
        settings, StreamState.empty(settings), DeviceThresholds(registry, settings)
    )


def devices(settings, names: list[str], heating: list[float], start: int = 0) -> pd.DataFrame:
    coil, states = case(heating)
    one = frame(settings, STEP_S, coil, states, start=start)
    return pd.concat([one.assign(device_id=n) for n in names], ignore_index=True)


def teach(eng: StreamingEngine, settings, slow: int, fast_ones: int) -> pd.DataFrame:
    """One batch: ``slow`` devices with slow defrosts and ``fast_ones`` whose defrost reads
    faster than the limit. Returns the firings."""
    names = [f"c{i}" for i in range(slow + fast_ones)]
    parts = [devices(settings, names[:slow], SLOW)]
    if fast_ones:
        parts.append(devices(settings, names[slow:], fast()))
    return cooling_losses(eng, pd.concat(parts, ignore_index=True))


def first_defrost(eng: StreamingEngine, settings) -> pd.DataFrame:
    """The device that has shown no defrost: its first, read faster than the limit."""
    coil, states = case(fast())
    batch = frame(settings, STEP_S, coil, states, start=TAUGHT).assign(device_id="new")
    return cooling_losses(eng, batch)


def enough(settings) -> int:
    return int(settings.rule(RULE).params["cohort_min_devices"])


def test_the_cases_are_built_as_described():
    assert all(np.diff([MT_RUNNING, *SLOW[:2]]) / 5 <= LIMIT) and SLOW[1] > DEFROST_ABOVE
    assert (FAST_ENTRY - MT_RUNNING) / 5 > LIMIT and FAST_ENTRY > DEFROST_ABOVE > MT_RUNNING
    assert (FAST_ENTRY - MT_RUNNING) / 5 < (PLATEAU[0] - MT_RUNNING) / 5  # under the plateau


def test_a_first_defrost_read_faster_than_the_limit_is_no_loss_once_the_cohort_showed_one(
    monkeypatch,
):
    """Two of five taught devices read their defrost faster than the limit: the cohort's
    typical warm-up is 0, yet a defrost read so is one of this cohort's."""
    settings = settings_at(STEP_S, monkeypatch)
    eng = cohort_engine(settings, slow=enough(settings) - 2, fast_ones=2)
    assert teach(eng, settings, slow=enough(settings) - 2, fast_ones=2).empty
    avg = eng.state.averages[RULE]
    assert (avg.minutes[:-1, 1] >= 1).all()  # every taught device has seen its defrost
    assert np.nanmedian(np.where(avg.minutes[:-1, 0] > 0, 1.0, 0.0)) == 0  # typical: slower
    assert first_defrost(eng, settings).empty


def test_a_cohort_whose_defrosts_all_read_slower_still_pages_at_once(monkeypatch):
    settings = settings_at(STEP_S, monkeypatch)
    eng = cohort_engine(settings, slow=enough(settings), fast_ones=0)
    assert teach(eng, settings, slow=enough(settings), fast_ones=0).empty
    fired = first_defrost(eng, settings)
    assert fired["ts"].tolist() == [T0 + pd.Timedelta(seconds=STEP_S * (TAUGHT + len(RUNNING)))]
    assert fired["reference"].tolist() == [LIMIT]


def test_a_fast_rise_the_rule_paged_is_no_witness(monkeypatch):
    """Once the cohort's typical warm-up is known (0), two devices' fast one-interval rises
    page, as a lost compressor's would; they are learnt as defrosts, yet the next device's
    same rise still pages at that reading."""
    settings = settings_at(STEP_S, monkeypatch)
    slow = enough(settings)
    eng = cohort_engine(settings, slow=slow, fast_ones=2)
    assert teach(eng, settings, slow=slow, fast_ones=0).empty
    names = [f"c{slow}", f"c{slow + 1}"]
    paged = cooling_losses(eng, devices(settings, names, fast(), start=TAUGHT))
    assert sorted(paged["device_id"]) == names
    assert (eng.state.averages[RULE].minutes[slow : slow + 2, 0] > 0).all()
    coil, states = case(fast())
    later = TAUGHT * 2
    batch = frame(settings, STEP_S, coil, states, start=later).assign(device_id="new")
    fired = cooling_losses(eng, batch)
    assert fired["ts"].tolist() == [T0 + pd.Timedelta(seconds=STEP_S * (later + len(RUNNING)))]


def test_the_device_s_own_slower_defrosts_keep_it_paging(monkeypatch):
    """The cohort's witness speaks only for a device that has seen no defrost of its own: one
    whose own defrosts read slower is judged by them, as before."""
    settings = settings_at(STEP_S, monkeypatch)
    eng = cohort_engine(settings, slow=enough(settings) - 2, fast_ones=2)
    coil, states = case(SLOW)
    own = frame(settings, STEP_S, coil, states).assign(device_id="new")
    taught = teach(eng, settings, slow=enough(settings) - 2, fast_ones=2)
    assert taught.empty and cooling_losses(eng, own).empty
    fired = first_defrost(eng, settings)
    assert fired["ts"].tolist() == [T0 + pd.Timedelta(seconds=STEP_S * (TAUGHT + len(RUNNING)))]


def test_the_witness_is_kept_in_the_saved_state_and_read_one_reading_per_file(
    monkeypatch, tmp_path
):
    settings = settings_at(STEP_S, monkeypatch)
    eng = cohort_engine(settings, slow=enough(settings) - 2, fast_ones=2)
    assert teach(eng, settings, slow=enough(settings) - 2, fast_ones=2).empty
    path = tmp_path / "state"
    eng.state.save(path)
    coil, states = case(fast())
    for i, (c, s) in enumerate(zip(coil, states, strict=True)):
        loaded = StreamingEngine(settings, StreamState.load(path, settings), eng.thresholds)
        batch = frame(settings, STEP_S, [c], [s], start=TAUGHT + i).assign(device_id="new")
        assert cooling_losses(loaded, batch).empty
        loaded.state.save(path)
