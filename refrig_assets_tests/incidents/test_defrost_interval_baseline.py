"""The usual defrost interval a device without enough defrosts of its own is judged against:
pooled over its cohort (fleet) with the devices that have not defrosted often enough yet
counted too (their open gaps are at least as long as seen), so a short history does not make
the devices that defrost most often the measure of every device."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.incidents.baselines import DEFROST_INTERVAL, build_baselines, lookup
from refrig_assets.incidents.signatures import load_signatures

TABLE = load_signatures()
T0 = pd.Timestamp("2026-01-01T00:00", tz="UTC")
WINDOW = pd.Timedelta(minutes=15)


def defrosting(device: str, every_hours: float, hours: float, first_hours: float) -> list[dict]:
    """Windows of ``device`` over ``hours``, with a defrost window every ``every_hours``
    starting at ``first_hours``."""
    n = int(hours * 4)
    starts = {
        round((first_hours + k * every_hours) * 4) for k in range(int(hours // every_hours) + 2)
    }
    return [
        {
            "device_id": device,
            "cohort": "walk_in",
            "window_start": T0 + i * WINDOW,
            "window_end": T0 + (i + 1) * WINDOW,
            "defrost_minutes": 12.0 if i in starts else 0.0,
        }
        for i in range(n)
    ]


def fleet(hours: float) -> pd.DataFrame:
    """Two devices defrosting every 3.75 h and eight every 7 h (phases spread)."""
    rows = []
    for d in range(2):
        rows += defrosting(f"short-{d}", 3.75, hours, 0.5 + d)
    for d in range(8):
        rows += defrosting(f"long-{d}", 7.0, hours, 0.5 + 0.75 * d)
    return pd.DataFrame(rows)


def usual_interval(history: pd.DataFrame, device: str) -> tuple[float, int]:
    center, _, level, _ = lookup(
        build_baselines(history, TABLE),
        np.array([device], dtype=object),
        np.array(["walk_in"], dtype=object),
        DEFROST_INTERVAL,
        own=True,
    )
    return float(center[0]), int(level[0])


def test_a_short_history_does_not_make_the_frequent_defrosters_everyones_interval():
    history = fleet(12)  # the 7-hour devices have defrosted once or twice: no interval of their own
    center, level = usual_interval(history, "long-0")

    assert level < 2
    # never the 3.75 h of the only devices with three defrosts: unknown, or at least 7 h x 2/3
    # (a device 1.5 intervals past its last defrost, 7 h ago, would otherwise be a failure)
    assert np.isnan(center) or center >= 7.0 / 1.5


def test_with_enough_history_the_pooled_interval_is_the_cohorts_usual_one():
    history = fleet(48)
    newcomer = pd.DataFrame(defrosting("new-0", 7.0, 6, 3.0))
    center, level = usual_interval(pd.concat([history, newcomer], ignore_index=True), "new-0")

    assert level < 2
    assert center == pytest.approx(7.0, abs=0.5)


def test_a_device_with_enough_defrosts_keeps_its_own_interval():
    center, level = usual_interval(fleet(48), "short-0")

    assert level == 2
    assert center == pytest.approx(3.75)
