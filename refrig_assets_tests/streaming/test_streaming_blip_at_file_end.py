"""A running stretch at the end of a landing file, shorter than a start's least run so far: the
file cannot tell a start from a noisy idle current crossing running_above (the run's length is
unknown until the next readings). Its readings are held back unevaluated until a later file
tells: read as idle if an idle reading ends the stretch within ``min_seconds``, as running once
it has lasted that long. A blip that was a file's last reading during a defrost paged as a
running compressor over a warming coil.

Readings every 10 s of one device (test_streaming_idle_blip's defrost with a blip).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from refrig_assets.streaming.replay import frame_arrays
from refrig_assets.streaming.state import StreamState
from refrig_assets_tests.streaming.test_streaming_defrost_stay import engine_from
from refrig_assets_tests.streaming.test_streaming_hidden_cycle import (
    LIMIT,
    RUN,
    cooling_losses,
    engine,
    frame,
    settings_at,
)
from refrig_assets_tests.streaming.test_streaming_idle_blip import (
    BLIP_AT,
    COLD,
    PER_MINUTE,
    RUNNING_10,
    STEP_S,
    defrost_with_run,
    min_run_seconds,
)


def in_files(settings, coil, states, cuts: list[int], eng=None) -> list[pd.DataFrame]:
    """The cooling losses of each file, the readings cut before each index of ``cuts``."""
    eng = eng or engine(settings)
    bounds = [0, *cuts, len(coil)]
    return [
        cooling_losses(eng, frame(settings, STEP_S, coil[a:b], states[a:b], start=a))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def together(found: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([f for f in found if len(f)] or found[:1], ignore_index=True)


@pytest.mark.parametrize("readings", [1, 2])
def test_a_blip_ending_a_file_is_no_cooling_loss(monkeypatch, readings):
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = defrost_with_run(readings)
    cut = BLIP_AT + readings  # the blip is the first file's last reading(s)
    assert states[cut - 1] == RUN and states[cut] != RUN
    found = in_files(settings, coil, states, [cut])
    assert all(f.empty for f in found)


def test_a_blip_ending_a_file_is_held_through_the_saved_state(monkeypatch, tmp_path):
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = defrost_with_run(1)
    path = tmp_path / "state"
    for a, b in ((0, BLIP_AT + 1), (BLIP_AT + 1, len(coil))):
        eng = engine_from(settings, StreamState.load(path, settings) if path.exists() else None)
        batch = frame(settings, STEP_S, coil[a:b], states[a:b], start=a)
        assert cooling_losses(eng, batch).empty
        eng.state.save(path)


def test_a_held_reading_sent_again_is_evaluated_once(monkeypatch):
    """The file that ends with the blip arrives twice: the second copy adds nothing (its
    readings are no later than the held one), and the blip is still told by the next file."""
    settings = settings_at(STEP_S, monkeypatch)
    coil, states = defrost_with_run(1)
    eng = engine(settings)
    cut = BLIP_AT + 1
    first = frame(settings, STEP_S, coil[:cut], states[:cut])
    assert cooling_losses(eng, first).empty
    again = eng.process(*frame_arrays(first, eng.settings.sensors))
    assert again.readings == 0 and again.late == len(first) and again.firings.empty
    rest = frame(settings, STEP_S, coil[cut:], states[cut:], start=cut)
    assert cooling_losses(eng, rest).empty


@pytest.mark.parametrize("per_file", [1, 2, 7])
def test_a_run_as_long_as_a_start_fires_at_the_same_reading_whatever_the_files(
    monkeypatch, per_file
):
    """A real run during the defrost (as long as a start) read one batch, or in files of a
    few readings each (so files end within its first seconds): the same firing."""
    settings = settings_at(STEP_S, monkeypatch)
    readings = int(np.ceil(min_run_seconds() / STEP_S))
    coil, states = defrost_with_run(readings)
    whole = cooling_losses(engine(settings), frame(settings, STEP_S, coil, states))
    assert len(whole) == 1
    cuts = list(range(per_file, len(coil), per_file))
    pd.testing.assert_frame_equal(together(in_files(settings, coil, states, cuts)), whole)


@pytest.mark.parametrize("per_file", [1, 3])
def test_a_running_loss_read_in_small_files_fires_as_in_one_batch(monkeypatch, per_file):
    """A compressor that starts and runs over a warming coil: its start ends files, is held,
    and the loss fires at the same reading with the same numbers as in one batch."""
    settings = settings_at(STEP_S, monkeypatch)
    idle = [COLD] * (5 * PER_MINUTE)
    warming = [COLD + 1.5 * LIMIT * (k + 1) / PER_MINUTE for k in range(10 * PER_MINUTE)]
    coil = RUNNING_10 + idle + warming
    states = [RUN] * len(RUNNING_10) + [0] * len(idle) + [RUN] * len(warming)
    whole = cooling_losses(engine(settings), frame(settings, STEP_S, coil, states))
    assert len(whole) == 1
    cuts = list(range(per_file, len(coil), per_file))
    pd.testing.assert_frame_equal(together(in_files(settings, coil, states, cuts)), whole)
    as_before = engine(replace(settings, least_run_ns=0))
    before = cooling_losses(as_before, frame(settings, STEP_S, coil, states))
    pd.testing.assert_frame_equal(before, whole)
