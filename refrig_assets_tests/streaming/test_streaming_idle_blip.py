"""A noisy idle current crossing running_above for a reading or two (a large plant's idle draw
at a 10 s cadence) is no start: the feature contract counts a start only for a run of at least
``min_seconds`` (device_features, compressor_starts_per_hour). The streaming rules read such a
run between idle readings as idle too, so a defrost's warming coil is not judged as a running
compressor that does not cool at the one reading whose current crossed the line.

Readings every 10 s of one device (test_streaming_hidden_cycle's helpers), nothing learnt.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets_tests.streaming.test_streaming_defrost_stay import DEFROST_ABOVE
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

STEP_S = 10
PER_MINUTE = 60 // STEP_S
COLD = -28.0
RUNNING_10 = [COLD] * (10 * PER_MINUTE)
# A hot-gas defrost: the idle coil warms at twice the limit up into the defrost state.
DEFROST = [COLD + 2.0 * LIMIT * (k + 1) / PER_MINUTE for k in range(15 * PER_MINUTE)]
BLIP_AT = len(RUNNING_10) + 4 * PER_MINUTE  # 4 minutes into the defrost


def min_run_seconds() -> float:
    """The contract's least run of a start (the setting the streaming rules read)."""
    spec = load_contract("device_features").column("compressor_starts_per_hour").extra["derived"]
    return float(spec["min_seconds"])


def defrost_with_run(run_readings: int) -> tuple[list[float], list[int]]:
    """The device runs 10 minutes, then defrosts; the current reads running for
    ``run_readings`` readings from BLIP_AT."""
    coil = RUNNING_10 + DEFROST
    states = [RUN] * len(RUNNING_10) + [IDLE] * len(DEFROST)
    for i in range(BLIP_AT, BLIP_AT + run_readings):
        states[i] = RUN
    return coil, states


def test_the_defrost_is_built_as_described():
    assert DEFROST[-1] > DEFROST_ABOVE > DEFROST[BLIP_AT - len(RUNNING_10)]
    assert np.all(np.diff(DEFROST) * PER_MINUTE > LIMIT)
    assert STEP_S < min_run_seconds() < 4 * STEP_S


def test_the_setting_is_the_contracts_and_applies_only_below_its_cadence(monkeypatch):
    assert settings_at(STEP_S, monkeypatch).least_run_ns == int(min_run_seconds() * 1e9)
    # At a cadence of min_seconds or slower every run seen spans a reading interval.
    assert settings_at(int(min_run_seconds()), monkeypatch).least_run_ns == 0
    assert settings_at(60, monkeypatch).least_run_ns == 0


def test_a_defrost_is_no_cooling_loss(monkeypatch):
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = defrost_with_run(0)
    assert cooling_losses(engine(settings), frame(settings, STEP_S, coil, states)).empty


@pytest.mark.parametrize("readings", [1, 2])
def test_an_idle_current_crossing_the_line_for_less_than_a_run_is_no_cooling_loss(
    monkeypatch, readings
):
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = defrost_with_run(readings)
    # Read as running, the blip pages: the rule judges a running compressor by the limit alone.
    as_before = engine(replace(settings, least_run_ns=0))
    assert len(cooling_losses(as_before, frame(settings, STEP_S, coil, states))) == 1
    assert cooling_losses(engine(settings), frame(settings, STEP_S, coil, states)).empty


def test_a_blip_spread_over_two_files_is_read_alike(monkeypatch):
    """The idle reading that ends the blip arrives in the next file: the buffer holds the blip,
    so the next file reads it as idle; the blip still ends the first file as running (as the
    feature SQL counts a run not yet ended in its partition)."""
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = defrost_with_run(1)
    eng = engine(settings)
    cut = BLIP_AT + 2
    first = cooling_losses(eng, frame(settings, STEP_S, coil[:cut], states[:cut]))
    rest = cooling_losses(eng, frame(settings, STEP_S, coil[cut:], states[cut:], start=cut))
    assert first.empty and rest.empty


def test_a_run_as_long_as_a_start_still_fires_at_the_same_reading(monkeypatch):
    settings = settings_at(STEP_S, monkeypatch)
    readings = int(np.ceil(min_run_seconds() / STEP_S))  # first reading to the idle one: 30 s
    coil, states = defrost_with_run(readings)
    old = cooling_losses(
        engine(replace(settings, least_run_ns=0)), frame(settings, STEP_S, coil, states)
    )
    new = cooling_losses(engine(settings), frame(settings, STEP_S, coil, states))
    assert len(new) == 1
    assert new["ts"].iloc[0] == T0 + pd.Timedelta(seconds=STEP_S * BLIP_AT)
    pd.testing.assert_frame_equal(new.reset_index(drop=True), old.reset_index(drop=True))


def test_a_running_compressor_over_a_warming_coil_fires_as_before(monkeypatch):
    """A real loss with the compressor running throughout is untouched."""
    settings = settings_at(STEP_S, monkeypatch)
    coil = RUNNING_10 + [COLD + 1.5 * LIMIT * (k + 1) / PER_MINUTE for k in range(10 * PER_MINUTE)]
    states = [RUN] * len(coil)
    old = cooling_losses(
        engine(replace(settings, least_run_ns=0)), frame(settings, STEP_S, coil, states)
    )
    new = cooling_losses(engine(settings), frame(settings, STEP_S, coil, states))
    assert len(new) == 1
    pd.testing.assert_frame_equal(new.reset_index(drop=True), old.reset_index(drop=True))
