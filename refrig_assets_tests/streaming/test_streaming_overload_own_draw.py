"""compressor_overload on a device whose registry row gives no ``current_threshold``: judged
against its own running draw (``running_multiplier`` × its running moving average; its
cohort's before it has one), not against the contract's fleet-wide default, which a large
healthy compressor draws all the time. A threshold the registry gives works as it always did.

Readings are one a minute (test_streaming_rules' helpers); the multiplier and history come from
config/streaming.yaml, the default from contracts/device_registry.yaml.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from refrig_assets.ingestion.device_registry import load_device_registry
from refrig_assets.streaming.engine import DeviceThresholds
from refrig_assets.streaming.replay import frame_arrays
from refrig_assets_tests.streaming.test_streaming_rules import (
    IDLE_CURRENT,
    SETTINGS,
    default,
    engine,
    fire,
    readings,
    registry,
)

RULE = "compressor_overload"
LIMIT = default("current_threshold")
MULTIPLIER = SETTINGS.rule(RULE).params["running_multiplier"]
HISTORY = int(SETTINGS.rule(RULE).minutes("min_history_minutes")) + 1
LARGE = LIMIT + 2.0  # a healthy large compressor, above the fleet-wide default


def overloads(eng, *frames: pd.DataFrame) -> pd.DataFrame:
    firings = fire(eng, *frames)
    return firings[firings["rule"] == RULE]


def firing_readings(eng, frame: pd.DataFrame) -> int:
    """Readings of ``frame`` on which the rule fires (episode or not)."""
    return eng.process(*frame_arrays(frame, SETTINGS.sensors)).firing_readings[RULE]


def test_the_rule_reads_its_own_draw_settings():
    assert MULTIPLIER > 1.0
    assert LARGE * MULTIPLIER > LARGE + 5


def test_a_large_compressor_without_a_registry_threshold_is_no_overload():
    """Before it has a running history (nor its cohort) the default applies to its first
    reading (read mid-run: no start seen), then the multiple of the draw it has shown so far;
    once it has a history, its healthy draw above the default fires no more either."""
    eng = engine(registry())  # no current_threshold column
    assert firing_readings(eng, readings(current_compressor=[LARGE] * HISTORY)) == 1
    later = readings(start=HISTORY, current_compressor=[LARGE + 3.0] * 10)
    assert firing_readings(eng, later) == 0


def test_a_blank_threshold_is_not_given():
    eng = engine(registry(current_threshold=np.nan))
    fire(eng, readings(current_compressor=[LARGE] * HISTORY))
    assert firing_readings(eng, readings(start=HISTORY, current_compressor=LARGE + 3.0)) == 0


def test_its_overload_fires_above_the_multiple_of_its_running_draw():
    draw = LIMIT / MULTIPLIER + 5.0  # its multiple is above the default
    eng = engine(registry())
    assert overloads(eng, readings(current_compressor=[draw] * HISTORY)).empty
    over = draw * MULTIPLIER
    assert overloads(eng, readings(start=HISTORY, current_compressor=over - 0.1)).empty
    # A fresh engine with the same history: the reading just above its multiple fires, the
    # reference being the multiple of its running average.
    eng = engine(registry())
    fire(eng, readings(current_compressor=[draw] * HISTORY))
    firing = overloads(eng, readings(start=HISTORY, current_compressor=over + 0.1))
    assert len(firing) == 1
    assert firing["reference"].iloc[0] == pytest.approx(over)


def test_a_small_compressors_overload_fires_at_the_same_reading_as_before():
    """Running at 10 A, an overload to above the default fires at its first reading, as it
    did against the default."""
    eng = engine(registry())
    fire(eng, readings(current_compressor=[10.0] * HISTORY))
    firing = overloads(eng, readings(start=HISTORY, current_compressor=[10.0, LIMIT + 9.0]))
    assert len(firing) == 1
    assert firing["ts"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z") + pd.Timedelta(
        minutes=HISTORY + 1
    )


def test_a_starts_inrush_is_no_overload_of_its_own_draw():
    """The first running reading after an idle one can catch the locked-rotor inrush."""
    eng = engine(registry())
    fire(eng, readings(current_compressor=[10.0] * HISTORY))
    inrush = 4.0 * 10.0  # under the default: no overload before either
    start = readings(start=HISTORY, current_compressor=[IDLE_CURRENT, inrush, 10.0])
    assert overloads(eng, start).empty
    held = readings(start=HISTORY + 3, current_compressor=inrush)
    assert len(overloads(eng, held)) == 1  # still 4x its draw a minute on: an overload


def test_a_given_threshold_works_as_before():
    given = LARGE + 5.0  # below the own-draw limit (LARGE x MULTIPLIER)
    eng = engine(registry(current_threshold=given))
    fire(eng, readings(current_compressor=[LARGE] * HISTORY))
    assert overloads(eng, readings(start=HISTORY, current_compressor=given)).empty
    firing = overloads(eng, readings(start=HISTORY + 1, current_compressor=given + 0.1))
    assert len(firing) == 1
    assert firing["reference"].iloc[0] == given


def test_before_its_own_history_the_cohorts_running_draw_applies():
    need = int(SETTINGS.rule(RULE).params["cohort_min_devices"])
    others = [f"d{i}" for i in range(2, need + 2)]
    reg = pd.DataFrame({"device_id": ["d1", *others], "site_id": "s1", "cohort": "cold_store"})
    eng = engine(reg)
    fire(eng, *(readings(d, current_compressor=[LARGE] * HISTORY) for d in others))
    assert overloads(eng, readings("d1", start=HISTORY, current_compressor=LARGE + 3.0)).empty
    far = readings("d1", start=HISTORY + 1, current_compressor=LARGE * MULTIPLIER + 1.0)
    assert len(overloads(eng, far)) == 1


def test_without_any_running_history_the_contract_default_applies():
    eng = engine(registry())
    assert len(overloads(eng, readings(current_compressor=LIMIT + 1.0))) == 1


def test_the_registry_file_tells_which_thresholds_it_leaves_empty(tmp_path):
    """The materialised registry has the contract defaults filled in; the file read without
    them tells a blank value from a given one."""
    path = tmp_path / "registry.csv"
    pd.DataFrame(
        {
            "device_id": ["d1", "d2"],
            "site_id": "s1",
            "cohort": "cold_store",
            "current_threshold": [None, 60.0],
        }
    ).to_csv(path, index=False)
    filled = load_device_registry(path)
    assert filled["current_threshold"].tolist() == [LIMIT, 60.0]
    raw = load_device_registry(path, fill_defaults=False)
    assert np.isnan(raw["current_threshold"].iloc[0])
    assert np.isnan(raw["vibration_multiplier"]).all()  # a column the file lacks
    thresholds = DeviceThresholds(filled, SETTINGS, raw)
    values, _, _ = thresholds.for_devices(pd.Index(["d1", "d2", "d3"]))
    assert values["current_threshold"].tolist() == [LIMIT, 60.0, LIMIT]
    assert thresholds.unset("current_threshold").tolist() == [True, False, True]
    # Without the file, the filled registry tells nothing is left empty.
    alone = DeviceThresholds(filled, SETTINGS)
    alone.for_devices(pd.Index(["d1", "d2"]))
    assert alone.unset("current_threshold").tolist() == [False, False]
