"""A service keeps the cause baselines indexed between requests; aligning windows to them must
give exactly what the incidents package's own lookup gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.cause_world import COHORT, history

from refrig_assets.incidents.baselines import BaselineLookup, IndexedBaselines, build_baselines
from refrig_assets.incidents.causes import diagnose
from refrig_assets.incidents.signatures import load_signatures

TABLE = load_signatures()
HISTORY = history()
BASELINES = build_baselines(HISTORY, TABLE)
EMPTY = build_baselines(HISTORY.iloc[0:0], TABLE)


def recent_windows() -> pd.DataFrame:
    """The last windows of every device, one device unknown to the baselines, and some values
    pushed far from normal so that signatures match."""
    frame = HISTORY.groupby("device_id").tail(3).reset_index(drop=True)
    numeric = [c for c in frame.columns if frame[c].dtype.kind == "f"]
    frame.loc[::2, numeric] = frame.loc[::2, numeric] * 3.0 + 5.0
    frame.loc[:2, "device_id"] = "dev-new"
    frame.loc[3:4, "cohort"] = "unknown"
    return frame


@pytest.mark.parametrize("baselines", [BASELINES, EMPTY], ids=["baselines", "no baselines"])
def test_indexed_baselines_align_rows_as_the_lookup_of_the_frame(baselines):
    devices = np.array(["dev-1", "dev-9", "dev-3", "dev-1"], dtype=object)
    cohorts = np.array([COHORT, COHORT, "unknown", COHORT], dtype=object)
    indexed = BaselineLookup(IndexedBaselines(baselines), devices, cohorts)
    plain = BaselineLookup(baselines, devices, cohorts)
    for feature in TABLE.baseline_features():
        for own in (True, False):
            got, expected = indexed.get(feature, own=own), plain.get(feature, own=own)
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("baselines", [BASELINES, EMPTY], ids=["baselines", "no baselines"])
def test_diagnosis_with_indexed_baselines_is_the_diagnosis(baselines):
    windows = recent_windows()
    expected = diagnose(windows, baselines, TABLE)
    assert (expected["cause"] != "unknown").any() or baselines is EMPTY
    found = diagnose(windows, baselines, TABLE, indexed=IndexedBaselines(baselines))
    pd.testing.assert_frame_equal(found, expected, check_exact=True)
