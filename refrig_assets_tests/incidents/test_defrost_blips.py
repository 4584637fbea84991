"""A medium-temperature case's idle coil crosses the defrost threshold for a reading or two in
many off-cycles: those blips are no defrosts. The device's usual defrost interval is the time
between its real defrosts, so an ordinary gap between them (or a fault that stops the blips:
a dead evaporator fan, a refrigerant leak) does not read as a defrost overdue."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.incidents.baselines import DEFROST_INTERVAL, build_baselines
from refrig_assets.incidents.signatures import load_signatures

TABLE = load_signatures()
T0 = pd.Timestamp("2026-01-01T00:00", tz="UTC")
WINDOW = pd.Timedelta(minutes=15)


def case(device: str, hours: int, defrost_every_h: float, blip_every_h: float) -> pd.DataFrame:
    """15-minute windows with a 15-minute defrost every ``defrost_every_h`` and a one-minute
    off-cycle blip above the defrost threshold every ``blip_every_h`` in between."""
    n = hours * 4
    minutes = np.zeros(n)
    blips = np.arange(0, n, round(blip_every_h * 4))
    minutes[blips] = 1.0
    defrosts = np.arange(2, n, round(defrost_every_h * 4))
    minutes[defrosts] = 15.0
    return pd.DataFrame(
        {
            "device_id": device,
            "cohort": "medium_temp",
            "window_start": [T0 + i * WINDOW for i in range(n)],
            "window_end": [T0 + (i + 1) * WINDOW for i in range(n)],
            "defrost_minutes": minutes,
        }
    )


def own_interval(history: pd.DataFrame, device: str) -> float:
    """The device's own usual interval (NaN: too few defrosts of its own)."""
    baselines = build_baselines(history, TABLE).set_index(["scope", "key"])
    return float(baselines.loc[("device", device), f"center:{DEFROST_INTERVAL}"])


def test_off_cycle_blips_do_not_make_the_defrost_interval_an_off_cycle():
    history = case("mt-0", hours=30, defrost_every_h=6, blip_every_h=1)
    assert own_interval(history, "mt-0") == pytest.approx(6.0)


def test_a_device_whose_runs_are_all_alike_keeps_every_one():
    history = case("mt-0", hours=30, defrost_every_h=6, blip_every_h=1)
    history["defrost_minutes"] = np.where(history.index % 4 == 0, 1.0, 0.0)  # no long runs
    assert own_interval(history, "mt-0") == pytest.approx(1.0)
