"""A running coil's rise read over one reading interval as long as the sustain time (a fleet
reporting every 5 minutes) may hide an off-cycle: the compressor stopped and restarted between
two readings, and the restart reading still carries the warm coil. Such a rise is a total
cooling loss only once the next reading confirms that the running compressor does not cool.

Devices are built reading every 5 minutes (REFRIG_CADENCE_SECONDS=300, so the rule's look-backs
span one reading interval) or every minute. Thresholds come from contracts/device_registry.yaml.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.streaming.config import StreamingSettings, load_streaming_settings
from refrig_assets.streaming.engine import DeviceThresholds, StreamingEngine
from refrig_assets.streaming.replay import frame_arrays
from refrig_assets.streaming.state import StreamState

RULE = "total_cooling_loss"
LIMIT = float(load_contract("device_registry").column("evaporator_rise_per_minute").default)
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
COIL_RUNNING = -30.0
RUN, IDLE = 1, 0


def settings_at(cadence_s: int, monkeypatch: pytest.MonkeyPatch) -> StreamingSettings:
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", str(cadence_s))
    return load_streaming_settings()


def frame(
    settings: StreamingSettings, step_s: int, coil: list[float], states: list[int], start: int = 0
) -> pd.DataFrame:
    """Readings every ``step_s`` seconds from reading ``start``: coil and running state."""
    n = len(coil)
    amps = np.where(
        np.array(states) == RUN, 10.0 * settings.running_above, settings.running_above / 5
    )
    return pd.DataFrame(
        {
            "device_id": "d1",
            "ts": T0 + pd.to_timedelta(step_s * (start + np.arange(n)), unit="s"),
            "current_compressor": amps,
            "vibration_compressor": np.where(amps > settings.running_above, 2.0, 0.0),
            "pressure_low_side": 300.0,
            "temperature_evaporator": np.asarray(coil, dtype=float),
            "door_open": 0.0,
        }
    )


def engine(settings: StreamingSettings) -> StreamingEngine:
    return StreamingEngine(settings, StreamState.empty(settings), DeviceThresholds(None, settings))


def cooling_losses(eng: StreamingEngine, batch: pd.DataFrame) -> pd.DataFrame:
    firings = eng.process(*frame_arrays(batch, eng.settings.sensors)).firings
    return firings[firings["rule"] == RULE]


def one_reading_per_file(settings, step_s, coil, states) -> list[pd.DataFrame]:
    eng = engine(settings)
    return [
        cooling_losses(eng, frame(settings, step_s, [c], [s], start=i))
        for i, (c, s) in enumerate(zip(coil, states, strict=True))
    ]


# A 5-minute rise faster than the limit between two running readings.
JUMP = 5 * (LIMIT + 0.5)
# The device has cycled before (an off-cycle the readings caught), so it is known to stop.
CYCLE = [COIL_RUNNING] * 4
CYCLE_STATES = [RUN, IDLE, IDLE, RUN]
# An off-cycle hidden between two readings: the restart reading carries the warm coil, the
# running compressor pulls it down again, however slowly (1 K per reading).
HIDDEN = CYCLE + [COIL_RUNNING + JUMP - i for i in range(5)]
HIDDEN_STATES = CYCLE_STATES + [RUN] * 5
# A running compressor that no longer cools: the coil jumps, then drifts on towards the cabinet
# air, more slowly than the limit.
LOSS = CYCLE + [COIL_RUNNING + JUMP + 2.0 * i for i in range(6)]
LOSS_STATES = CYCLE_STATES + [RUN] * 6
RISE_AT = 4  # the reading whose rate carries the jump (20 min)


def test_the_rule_spans_one_reading_interval_at_five_minutes(monkeypatch):
    settings = settings_at(300, monkeypatch)
    rule = settings.rule(RULE)
    assert rule.minutes("sustain_minutes") <= 5.0
    assert rule.minutes("rate_window_minutes") <= 5.0


def test_an_off_cycle_hidden_between_two_running_readings_is_no_cooling_loss(monkeypatch):
    settings = settings_at(300, monkeypatch)
    assert cooling_losses(engine(settings), frame(settings, 300, HIDDEN, HIDDEN_STATES)).empty


def test_a_hidden_off_cycle_read_one_reading_per_file_is_no_cooling_loss(monkeypatch):
    settings = settings_at(300, monkeypatch)
    assert all(f.empty for f in one_reading_per_file(settings, 300, HIDDEN, HIDDEN_STATES))


def test_a_running_rise_followed_by_an_idle_reading_is_left_to_the_idle_rule(monkeypatch):
    """The compressor stopped at the next reading: nothing says it ran without cooling."""
    settings = settings_at(300, monkeypatch)
    coil = CYCLE + [COIL_RUNNING + JUMP, COIL_RUNNING + JUMP + 1.0]
    states = CYCLE_STATES + [RUN, IDLE]
    assert cooling_losses(engine(settings), frame(settings, 300, coil, states)).empty


def test_a_running_compressor_that_does_not_cool_fires_one_reading_later(monkeypatch):
    settings = settings_at(300, monkeypatch)
    firing = cooling_losses(engine(settings), frame(settings, 300, LOSS, LOSS_STATES))
    assert len(firing) == 1
    # The next reading, still running and no colder, confirms the rise.
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=5 * (RISE_AT + 1))
    assert firing["span_minutes"].iloc[0] == pytest.approx(10.0)
    assert firing["observed"].iloc[0] == pytest.approx(JUMP / 5)
    assert firing["reference"].iloc[0] == LIMIT


def test_a_confirmed_running_loss_read_one_reading_per_file_fires_at_the_same_reading(
    monkeypatch,
):
    settings = settings_at(300, monkeypatch)
    per_file = one_reading_per_file(settings, 300, LOSS, LOSS_STATES)
    fired_at = [i for i, f in enumerate(per_file) if not f.empty]
    assert fired_at == [RISE_AT + 1]
    assert per_file[RISE_AT + 1]["span_minutes"].iloc[0] == pytest.approx(10.0)


def test_a_running_rise_still_faster_than_the_limit_at_the_next_reading_fires_there(monkeypatch):
    settings = settings_at(300, monkeypatch)
    coil = CYCLE + [COIL_RUNNING + JUMP, COIL_RUNNING + 2 * JUMP]
    firing = cooling_losses(engine(settings), frame(settings, 300, coil, CYCLE_STATES + [RUN, RUN]))
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=5 * (RISE_AT + 1))


def test_a_device_never_seen_idle_fires_at_the_rise_as_before(monkeypatch):
    """A compressor never seen stopping gives no reason to suspect a hidden off-cycle."""
    settings = settings_at(300, monkeypatch)
    firing = cooling_losses(engine(settings), frame(settings, 300, LOSS, [RUN] * len(LOSS)))
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=5 * RISE_AT)
    assert firing["span_minutes"].iloc[0] == pytest.approx(5.0)


def test_at_a_minute_cadence_a_running_loss_fires_at_the_sustain_time_as_before(monkeypatch):
    """Several readings make up the sustain time, so no off-cycle hides in one of them."""
    settings = settings_at(60, monkeypatch)
    sustain = int(settings.rule(RULE).minutes("sustain_minutes"))
    assert sustain > 1
    coil = CYCLE + [COIL_RUNNING + (LIMIT + 0.5) * i for i in range(1, 10)]
    states = CYCLE_STATES + [RUN] * 9
    firing = cooling_losses(engine(settings), frame(settings, 60, coil, states))
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == T0 + pd.Timedelta(minutes=3 + sustain)
    assert firing["span_minutes"].iloc[0] == pytest.approx(sustain)
