"""The compressor stop carried across hours (incidents/stops.py): its length at each window's
end and its share of the device's longest ordinary stop, the same whether the windows come in
one piece or hour by hour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.incidents.stops import (
    NO_TIME,
    StopState,
    derive_stops,
    empty_state,
    merge_states,
)

T0 = pd.Timestamp("2026-01-01", tz="UTC").value
W = 15 * 60 * 10**9


def _windows(duty: list[float], streak: list[float], defrost: list[bool], device: str = "d"):
    n = len(duty)
    start = T0 + np.arange(n, dtype=np.int64) * W
    return (
        np.full(n, device, dtype=object),
        start,
        start + W,
        np.array(duty, float),
        np.array(streak, float),
        np.array(defrost, bool),
    )


# Two hours of cycling with a 30-minute defrost stop, then a stop that never ends.
DUTY = [0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5] + [0.0] * 8
STREAK = [10, 10, 15, 30, 10, 10, 10, 0] + [15, 30, 45, 60, 15, 30, 45, 60]
DEFROST = [False, False, True, True] + [False] * 4 + [False, False, True, True] + [True] * 4


def test_a_stop_is_counted_across_hours_against_the_longest_ordinary_stop() -> None:
    stopped, over, after = derive_stops(
        *_windows(DUTY, STREAK, DEFROST), StopState(empty_state()), min_observed_hours=24
    )
    # The defrost stop (two windows) and the stop that goes on past the hour boundary.
    assert stopped[2:4].tolist() == [15.0, 30.0]
    assert stopped[8:].tolist() == [15.0, 30.0, 45.0, 60.0, 75.0, 90.0, 105.0, 120.0]
    assert stopped[4] == 0.0
    # Not judged before a stop with a defrost ended (window 4: the hour's first, so up to its
    # 10-minute streak of it is the defrost stop's rest); from then on against the longest
    # off-cycle (10 minutes, inside a window) running into the 40-minute defrost stop.
    assert over[:2].tolist() == [0.0, 0.0] and np.isnan(over[2:4]).all() and over[4] == 0.0
    assert over[8:] == pytest.approx([k * 15 / 50 for k in range(1, 9)])
    row = after.iloc[0]
    assert (row["longest_off_minutes"], row["longest_defrost_minutes"]) == (10.0, 40.0)
    assert row["idle_since"] == T0 + 8 * W and bool(row["stop_defrosted"])


def test_hour_by_hour_equals_all_at_once() -> None:
    rng = np.random.default_rng(3)
    n = 4 * 30
    duty = np.where(rng.random(n) < 0.4, 0.0, rng.random(n))
    duty[60:75] = 0.0
    duty[rng.random(n) < 0.05] = np.nan
    streak = rng.integers(0, 16, n).astype(float)
    heat = rng.random(n) < 0.15
    parts = [_windows(list(duty), list(streak), list(heat), dev) for dev in ("a", "b")]
    # Device b misses two hours (a gap ends its stop).
    keep_b = np.ones(n, bool)
    keep_b[40:48] = False
    columns = [np.concatenate([parts[0][k], parts[1][k][keep_b]]) for k in range(len(parts[0]))]
    whole_stopped, whole_over, whole_after = derive_stops(
        *columns, StopState(empty_state()), min_observed_hours=6
    )
    state = empty_state()
    stopped, over = np.full(len(columns[0]), np.nan), np.full(len(columns[0]), np.nan)
    hour = (columns[1] - T0) // (4 * W)
    for h in np.unique(hour):
        rows = np.flatnonzero(hour == h)
        s, o, after = derive_stops(
            *(c[rows] for c in columns), StopState(state), min_observed_hours=6
        )
        stopped[rows], over[rows] = s, o
        state = merge_states([after], state)
    np.testing.assert_array_equal(stopped, whole_stopped)
    np.testing.assert_array_equal(over, whole_over)
    mine = state.sort_values("device_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        mine, whole_after.sort_values("device_id").reset_index(drop=True), check_dtype=False
    )


def test_a_missing_window_or_duty_cycle_ends_the_stop() -> None:
    devices, start, end, duty, streak, heat = _windows([0.0] * 6, [15.0] * 6, [False] * 6)
    duty[2] = np.nan
    keep = np.array([True, True, True, True, False, True])
    stopped, _, after = derive_stops(
        devices[keep],
        start[keep],
        end[keep],
        duty[keep],
        streak[keep],
        heat[keep],
        StopState(empty_state()),
        min_observed_hours=1,
    )
    assert stopped.tolist()[:2] == [15.0, 30.0]
    assert np.isnan(stopped[2])
    assert stopped.tolist()[3:] == [15.0, 15.0]
    assert after.iloc[0]["idle_since"] == start[5]
    assert after.iloc[0]["idle_since"] != NO_TIME


def test_an_off_cycle_running_into_a_defrost_is_no_longer_stop_than_the_device_shows():
    """A defrost that began right after a run (25 minutes stopped), then one that began 15
    minutes into an off-cycle (40 minutes stopped): the second is its longest off-cycle
    running into its defrost, not a stop beyond what the device does."""
    # Idle streaks as the feature step counts them within the hour (from the stop's start).
    duty = [0.5, 0.0, 0.5, 0.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5]
    streak = [5, 15, 20, 15, 0, 15, 25, 0, 0, 10, 25, 40, 40]
    defrost = [False] * 9 + [False, True, True, False]
    defrost[5] = True
    _, over, _ = derive_stops(
        *_windows(duty, streak, defrost), StopState(empty_state()), min_observed_hours=24
    )
    assert np.nanmax(over) < 1.5


def test_the_state_rebuilt_from_history_is_the_state_followed_hour_by_hour(tmp_path):
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.incidents.causes_store import STOPS, CauseStore, stem_of
    from refrig_assets.incidents.signatures import load_signatures

    table = load_signatures()
    store = CauseStore(ParquetStore(tmp_path))
    rng = np.random.default_rng(5)
    hours = 6
    n = hours * 4
    for device in ("a", "b"):
        duty = np.where(rng.random(n) < 0.5, 0.0, 0.6)
        duty[10:15] = 0.0
        heat = (rng.random(n) < 0.2) & (duty == 0)
        columns = _windows(list(duty), list(rng.integers(0, 16, n)), list(heat), device)
        frame = pd.DataFrame(
            {
                "device_id": columns[0],
                "window_start": pd.to_datetime(columns[1], utc=True),
                "window_end": pd.to_datetime(columns[2], utc=True),
                "duty_cycle": columns[3],
                "compressor_idle_longest_minutes": columns[4],
                "defrost_minutes": np.where(columns[5], 5.0, 0.0),
            }
        )
        for h in range(hours):
            part = frame.iloc[h * 4 : (h + 1) * 4]
            stem = stem_of(pd.Timestamp(T0, tz="UTC") + pd.Timedelta(hours=h))
            path = tmp_path / "device_features" / f"{stem}.parquet"
            old = pd.read_parquet(path) if path.exists() else None
            both = part if old is None else pd.concat([old, part], ignore_index=True)
            store.store.write("device_features", stem, both)
    for h in range(hours):
        hour = pd.Timestamp(T0, tz="UTC") + pd.Timedelta(hours=h)
        key = hour.strftime("%Y-%m-%d-%H:00")
        features = store.store.read("device_features", key)
        store.with_derived(key, features, table)
    last = pd.Timestamp(T0, tz="UTC") + pd.Timedelta(hours=hours - 1)
    followed = pd.read_parquet(tmp_path / STOPS / f"{stem_of(last)}.parquet")
    for path in (tmp_path / STOPS).iterdir():
        path.unlink()
    rebuilt = store.stops_before((last + pd.Timedelta(hours=1)).strftime("%Y-%m-%d-%H:00"), table)
    key = ["device_id"]
    pd.testing.assert_frame_equal(
        followed.sort_values(key).reset_index(drop=True),
        rebuilt.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )


def test_a_compressor_never_seen_to_run_is_never_judged():
    """A current below the contract's running level reads as a compressor idle for ever: two
    days of it, with defrost-warm windows, say nothing of how long the device stops."""
    n = 2 * 24 * 4
    heat = list(np.arange(n) % 28 < 2)
    _, over, _ = derive_stops(
        *_windows([0.0] * n, [15.0] * n, heat), StopState(empty_state()), min_observed_hours=24
    )
    assert np.isnan(over).all()
