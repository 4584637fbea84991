"""A σ condition on a feature whose within-device spread is zero is not evaluated.

Windows a few readings long (a 1 Hz fleet's one-minute windows, a 5-minute fleet's three
readings) see the compressor on or off for the whole window: the duty cycle is 0 or 1, more
than half of a device's windows sit on its median and the pooled MAD is 0. Counted in that
spread, any window off the median read as 1e9σ, so "duty cycle 1.5σ up" held in every window
with the compressor running and signatures matched on it alone.
"""

import json

import numpy as np
import pandas as pd
from support.cause_world import HEALTHY, healthy_window, history

from refrig_assets.incidents.baselines import build_baselines
from refrig_assets.incidents.causes import diagnose
from refrig_assets.incidents.signatures import load_signatures

OVERDUE = 11.0  # hours since the last defrost: more than 1.5 x the history's 7 h interval


def on_or_off(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every window's duty cycle 1 or 0 (on in 2 windows of 5: median 0)."""
    return frame.assign(duty_cycle=np.where(np.arange(len(frame)) % 5 < 2, 1.0, 0.0))


def duty_evidence(found: pd.DataFrame) -> list[dict]:
    return [e for e in json.loads(found["evidence"].iloc[0]) if e["feature"] == "duty_cycle"]


def test_a_running_window_is_no_defrost_failure_when_the_duty_cycle_has_no_spread():
    table = load_signatures()
    baselines = build_baselines(on_or_off(history()), table)
    window = healthy_window(hours_since_defrost=OVERDUE, duty_cycle=1.0)

    found = diagnose(pd.DataFrame([window]), baselines, table)

    # Overdue defrost alone (coil and suction as usual) is not a defrost failure: the second
    # condition was the duty cycle, 1 against a median of 0 with no spread.
    assert found["cause"].iloc[0] != "defrost_failure"


def test_a_duty_cycle_with_a_spread_still_counts():
    table = load_signatures()
    baselines = build_baselines(history(), table)
    centre, swing = HEALTHY["duty_cycle"]
    window = healthy_window(hours_since_defrost=OVERDUE, duty_cycle=centre + 4 * swing)

    found = diagnose(pd.DataFrame([window]), baselines, table)

    assert found["cause"].iloc[0] == "defrost_failure"
    (duty,) = duty_evidence(found)
    assert duty["held"] and duty["sigma"] > 1.5


def test_the_other_conditions_still_name_the_cause_without_the_duty_cycle():
    table = load_signatures()
    baselines = build_baselines(on_or_off(history()), table)
    centre, swing = HEALTHY["temperature_evaporator_running_mean"]
    window = healthy_window(
        hours_since_defrost=OVERDUE,
        duty_cycle=1.0,
        temperature_evaporator_running_mean=centre - 4 * swing,  # an iced coil runs colder
    )

    found = diagnose(pd.DataFrame([window]), baselines, table)

    assert found["cause"].iloc[0] == "defrost_failure"
    # The duty cycle is not evidence: not evaluated, so not listed as held.
    assert not any(e["held"] for e in duty_evidence(found))
