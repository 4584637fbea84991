"""compressor_overload is a running current that stays high, not one sampled start inrush."""

import pandas as pd
from support.cause_world import healthy_window, history

from refrig_assets.incidents.baselines import build_baselines
from refrig_assets.incidents.causes import diagnose
from refrig_assets.incidents.signatures import load_signatures

TABLE = load_signatures()
BASELINES = build_baselines(history(), TABLE)
RUNNING = 7.0  # the history's running current (support.cause_world)


def cause(**values) -> str:
    return str(diagnose(pd.DataFrame([healthy_window(**values)]), BASELINES, TABLE)["cause"][0])


def test_one_sampled_inrush_in_a_window_of_ordinary_running_is_no_overload():
    # One reading of a 4.6x inrush among ~12 running readings of 7 A: the peak is 4.6x the
    # running current, the running mean about 1.3x.
    inrush = 4.6 * RUNNING
    assert (
        cause(
            current_compressor_max=inrush,
            current_compressor_running_mean=(11 * RUNNING + inrush) / 12,
        )
        != "compressor_overload"
    )


def test_a_running_current_that_stays_at_twice_its_own_is_an_overload():
    assert (
        cause(current_compressor_max=2.6 * RUNNING, current_compressor_running_mean=2.3 * RUNNING)
        == "compressor_overload"
    )
