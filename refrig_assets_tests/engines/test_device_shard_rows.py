"""Splitting a fleet's rows by device range: the same rows, in the same order, as each range's
mask, whether the ids come sorted (a stored registry, found by binary search) or not."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.engines.device_shards import (
    WHOLE_FLEET,
    DeviceRange,
    registry_parts,
    rows_per_range,
)

RANGES = [DeviceRange(None, "d-03"), DeviceRange("d-03", "d-07x"), DeviceRange("d-07x", None)]


@pytest.mark.parametrize("shuffled", [False, True])
def test_rows_per_range_are_the_rows_each_range_masks(shuffled):
    # Sorted ids with a repeated one and ids equal to a range bound; then the same shuffled.
    ids = pd.Series(["d-00", "d-01", "d-03", "d-03", "d-05", "d-07", "d-07x", "d-08", "d-10"])
    if shuffled:
        ids = ids.sample(frac=1.0, random_state=7).reset_index(drop=True)

    rows = rows_per_range(ids, RANGES)

    for r, found in zip(RANGES, rows, strict=True):
        np.testing.assert_array_equal(found, np.flatnonzero(r.mask(ids)))
    assert sorted(np.concatenate(rows).tolist()) == list(range(len(ids)))


def test_a_range_without_devices_and_the_whole_fleet():
    ids = pd.Series(["a", "b", "c"])
    assert rows_per_range(ids, [DeviceRange(None, "a"), DeviceRange("a", None)])[0].size == 0
    np.testing.assert_array_equal(rows_per_range(ids, WHOLE_FLEET)[0], [0, 1, 2])


def test_each_shard_gets_its_own_registry_rows_and_the_whole_fleet_the_registry_itself():
    registry = pd.DataFrame(
        {"device_id": ["d-00", "d-02", "d-03", "d-06", "d-09"], "cohort": list("abcde")}
    )

    parts = registry_parts(registry, RANGES)

    for r, part in zip(RANGES, parts, strict=True):
        pd.testing.assert_frame_equal(part, registry[r.mask(registry["device_id"])])
    assert registry_parts(registry, WHOLE_FLEET)[0] is registry
