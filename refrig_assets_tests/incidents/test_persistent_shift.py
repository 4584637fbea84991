"""A lasting shift is judged on a run of stretches, not on one window against the window
scatter: the leak's suction drop of 20 % in 15-minute windows whose scatter is 8 % (the
pull-down after each start) stays near 2.6σ in every window, yet an hour of such windows is
as unlikely by chance as one window beyond 5σ. A short excursion is not a lasting shift, and
one-minute windows are pooled into stretches first, so the test means the same at any cadence."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from refrig_assets.incidents.baselines import build_baselines
from refrig_assets.incidents.causes import diagnose, persistent_threshold
from refrig_assets.incidents.signatures import load_signatures

FEATURE = "pressure_low_side_running_mean"
T0 = pd.Timestamp("2026-01-02T00:00", tz="UTC")
CENTER, SCATTER = 380.0, 30.0


def suction_table():
    """The table with the leak's required suction condition alone."""
    table = load_signatures()
    leak = table.get("refrigerant_leak")
    suction = next(c for c in leak.conditions if c.required)
    sig = dataclasses.replace(leak, conditions=(suction,), min_conditions=1)
    return dataclasses.replace(table, signatures=(sig,))


def windows(values, minutes: float, start: pd.Timestamp) -> pd.DataFrame:
    n = len(values)
    step = pd.Timedelta(minutes=minutes)
    return pd.DataFrame(
        {
            "device_id": "d-0",
            "cohort": "c",
            "window_start": [start + i * step for i in range(n)],
            "window_end": [start + (i + 1) * step for i in range(n)],
            FEATURE: np.asarray(values, dtype=float),
            "duty_cycle": 0.5,
        }
    )


def history(minutes: float) -> pd.DataFrame:
    """A day of windows scattered ±SCATTER (normal) around CENTER."""
    n = int(24 * 60 / minutes)
    rng = np.random.default_rng(1)
    return windows(CENTER + SCATTER * rng.standard_normal(n), minutes, T0 - pd.Timedelta(days=1))


def diagnosed(values, minutes: float) -> pd.DataFrame:
    table = suction_table()
    baselines = build_baselines(history(minutes), table)
    return diagnose(windows(values, minutes, T0), baselines, table)


def test_the_per_stretch_threshold_is_as_rare_as_one_window_beyond_sigma():
    assert persistent_threshold(5.0, 4) == pytest.approx(1.99, abs=0.01)
    assert persistent_threshold(5.0, 1) == pytest.approx(5.0)


def test_an_hour_of_a_20_percent_drop_is_a_lasting_shift_though_no_window_passes_5_sigma():
    drop = [0.8 * CENTER] * 4  # each window about 2.5σ below
    out = diagnosed(drop, 15)
    assert list(out["cause"]) == ["unknown"] * 3 + ["refrigerant_leak"]
    evidence = json.loads(out["evidence"].iloc[-1])[0]
    assert evidence["sigma"] > -5
    assert evidence["persistent"]["held"] and evidence["persistent"]["samples"] == 4


def test_a_drop_that_does_not_last_the_stretches_is_no_shift():
    out = diagnosed([0.8 * CENTER] * 3 + [CENTER], 15)
    assert (out["cause"] == "unknown").all()
    out = diagnosed([0.8 * CENTER, 0.8 * CENTER, np.nan, 0.8 * CENTER], 15)
    assert (out["cause"] == "unknown").all()  # a stretch without a value proves nothing


def test_one_minute_windows_are_pooled_into_stretches():
    # A one-minute fleet whose windows scatter as much: an hour of the drop is a shift ...
    out = diagnosed([0.8 * CENTER] * 60, 1)
    assert out["cause"].iloc[-1] == "refrigerant_leak"
    assert (out["cause"].iloc[:-1] == "unknown").all()  # the stretches need the whole hour
    # ... twenty minutes of a deeper one (3σ each minute: below the one-window 5σ) are not.
    out = diagnosed([CENTER] * 40 + [0.75 * CENTER] * 20, 1)
    assert (out["cause"] == "unknown").all()


def test_the_stretches_reach_into_the_hour_before():
    table = suction_table()
    baselines = build_baselines(history(15), table)
    before = windows([0.8 * CENTER] * 4, 15, T0 - pd.Timedelta(hours=1))
    hour = windows([0.8 * CENTER] * 4, 15, T0)
    out = diagnose(hour, baselines, table, earlier=before)
    assert (out["cause"] == "refrigerant_leak").all()
    # The hour before only looked back at: without a drop there, the hour's first three
    # windows have too few stretches of it.
    out = diagnose(hour, baselines, table, earlier=before.assign(**{FEATURE: CENTER}))
    assert list(out["cause"]) == ["unknown"] * 3 + ["refrigerant_leak"]
