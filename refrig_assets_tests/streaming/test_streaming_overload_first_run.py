"""compressor_overload on a device whose registry row gives no ``current_threshold`` before
its running draw is known (a fleet's first hour: no trusted history of its own nor of its
cohort). A large healthy compressor whose draw sits at or above the contract's fleet-wide
default is judged against the draw it has shown so far (``running_multiplier`` × the mean of
its earlier running readings, never below the default), not paged at every reading of its
first runs; its start reading (possibly the locked-rotor inrush) is not judged.

Readings are one a minute (test_streaming_rules' helpers); the multiplier comes from
config/streaming.yaml, the default from contracts/device_registry.yaml.
"""

from __future__ import annotations

import pandas as pd

from refrig_assets_tests.streaming.test_streaming_overload_own_draw import (
    LIMIT,
    MULTIPLIER,
    firing_readings,
    overloads,
)
from refrig_assets_tests.streaming.test_streaming_rules import (
    IDLE_CURRENT,
    SETTINGS,
    T0,
    engine,
    readings,
    registry,
)

HISTORY = int(SETTINGS.rule("compressor_overload").minutes("min_history_minutes"))
# A healthy large compressor: its first run climbs from just under the default to above it
# (an R717 blast freezer of a 40 A default, read every few seconds, runs at 40-43 A).
FIRST_RUN = [LIMIT - 0.3, LIMIT - 0.2, LIMIT + 0.1, LIMIT + 0.5, LIMIT + 1.5, LIMIT + 2.5]


def test_the_first_run_is_shorter_than_the_history_the_rule_trusts():
    assert len(FIRST_RUN) + 3 < HISTORY
    assert max(FIRST_RUN) < LIMIT * MULTIPLIER


def test_a_large_compressors_first_run_is_no_overload_of_the_default():
    """Idle, then a start and a run whose draw crosses the default: nothing fires."""
    eng = engine(registry())  # no current_threshold column
    frame = readings(current_compressor=[IDLE_CURRENT] * 3 + FIRST_RUN)
    assert firing_readings(eng, frame) == 0


def test_its_first_run_across_batches_is_no_overload_either():
    eng = engine(registry())
    assert (
        firing_readings(eng, readings(current_compressor=[IDLE_CURRENT] * 3 + FIRST_RUN[:2])) == 0
    )
    later = readings(start=5, current_compressor=FIRST_RUN[2:])
    assert firing_readings(eng, later) == 0


def test_a_start_into_an_unknown_device_is_not_judged():
    """A start with nothing known of the device: the start reading may be the inrush."""
    eng = engine(registry())
    start = readings(current_compressor=[IDLE_CURRENT, LIMIT + 2.0])
    assert firing_readings(eng, start) == 0


def test_an_overload_in_the_first_run_of_a_small_compressor_fires_at_its_reading():
    """Running at 10 A (its multiple under the default), an overload above the default fires
    at its first reading, as against the default alone."""
    eng = engine(registry())
    series = [IDLE_CURRENT, 10.0, 10.0, 10.0, LIMIT + 9.0, LIMIT + 9.0]
    firing = overloads(eng, readings(current_compressor=series))
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=4)
    assert firing["reference"].iloc[0] == LIMIT


def test_a_draw_above_the_multiple_of_its_first_run_fires():
    """A large compressor's own first-run draw is the bound: well above its multiple fires."""
    eng = engine(registry())
    draw = LIMIT + 2.0
    over = draw * MULTIPLIER + 1.0
    series = [IDLE_CURRENT, draw, draw, draw, over]
    firing = overloads(eng, readings(current_compressor=series))
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=4)
    assert firing["reference"].iloc[0] == draw * MULTIPLIER


def test_a_device_first_read_running_above_the_default_fires_at_that_reading():
    """Nothing known and no start seen (its readings begin mid-run): the default applies."""
    eng = engine(registry())
    firing = overloads(eng, readings(current_compressor=[LIMIT + 9.0, LIMIT + 9.0]))
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == T0


def test_a_given_threshold_is_judged_at_every_reading_as_before():
    given = LIMIT - 5.0
    eng = engine(registry(current_threshold=given))
    frame = readings(current_compressor=[IDLE_CURRENT, given + 1.0, given + 1.0])
    assert firing_readings(eng, frame) == 2
