"""The feature step sizes its memory shards by the feature windows of the hour as well as by its
readings (``window_bytes`` of config/performance.yaml), so that DuckDB aggregates each shard in
memory under the budget; the windows it writes are those of the whole file, whatever the shard
count."""

from dataclasses import replace

import pandas as pd
import pyarrow.parquet as pq
import pytest

from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import embedded
from refrig_assets.engines.memory import MemoryBudget, load_memory_budget
from refrig_assets.features.windows import expected_readings_per_window, window_minutes
from refrig_assets_tests.engines.test_embedded_ranges import KEY, clean_file  # noqa: F401

MB = 2**20


def test_the_shards_are_the_most_that_readings_or_windows_need():
    budget = replace(
        load_memory_budget(), memory_budget_mb=256, reading_bytes=64, window_bytes=4096
    )
    per_shard_readings = 256 * MB // 64
    per_shard_windows = 256 * MB // 4096
    assert budget.feature_shards_for(0, 0) == 1
    # the windows need more shards than the readings
    assert budget.feature_shards_for(per_shard_readings, 3 * per_shard_windows) == 3
    assert budget.feature_shards_for(per_shard_readings, 3 * per_shard_windows + 1) == 4
    # the readings need more shards than the windows (a fast cadence: many readings a window)
    assert budget.feature_shards_for(5 * per_shard_readings, per_shard_windows) == 5
    # the quality step's rule is unchanged
    assert budget.shards_for(5 * per_shard_readings) == 5
    # a budget built without a window cost: the readings alone
    readings_only = MemoryBudget(budget.path, 256, 64)
    assert readings_only.feature_shards_for(per_shard_readings, 3 * per_shard_windows) == 1
    assert load_memory_budget().window_bytes is not None  # the file always gives one


def test_the_windows_expected_are_about_those_written(clean_file, tmp_path, monkeypatch):  # noqa: F811
    # The step estimates the hour's windows from its readings at the fleet's cadence: at most
    # the windows it writes (a device missing readings still has its windows), and not far
    # below them for a fleet reporting at its cadence.
    seen: list[tuple[int, float]] = []
    rule = MemoryBudget.feature_shards_for

    def recording(self: MemoryBudget, readings: int, windows: float) -> int:
        seen.append((readings, windows))
        return rule(self, readings, windows)

    monkeypatch.setattr(MemoryBudget, "feature_shards_for", recording)
    path = embedded.write_features(clean_file, ParquetStore(tmp_path), KEY)
    [(readings, windows)] = seen
    assert readings == pq.ParquetFile(clean_file).metadata.num_rows
    written = pq.ParquetFile(path).metadata.num_rows
    assert 0.8 * written <= windows <= written


@pytest.mark.parametrize("shards", [2, 3])
def test_shards_the_windows_ask_for_write_the_whole_files_windows(
    clean_file,  # noqa: F811
    tmp_path,
    monkeypatch,
    shards,
):
    # A budget whose readings fit one shard but whose windows need ``shards``: the step
    # writes in that many shards, and the windows are those of the file computed whole.
    budget = load_memory_budget()
    rows = pq.ParquetFile(clean_file).metadata.num_rows
    whole = embedded.write_features(
        clean_file, ParquetStore(tmp_path / "whole"), KEY, ranges=1, shards=1
    )
    budget_bytes = budget.memory_budget_mb * MB
    expected = rows / expected_readings_per_window(window_minutes())  # the step's estimate
    tight = replace(
        budget,
        reading_bytes=budget_bytes // rows,  # the readings alone: one shard
        window_bytes=int(budget_bytes * (shards - 1) // expected) + 1,
    )
    assert tight.shards_for(rows) == 1
    assert tight.feature_shards_for(rows, expected) == shards
    monkeypatch.setattr(embedded, "load_memory_budget", lambda: tight)
    sharded = embedded.write_features(clean_file, ParquetStore(tmp_path / "sharded"), KEY, ranges=1)
    assert pq.ParquetFile(sharded).metadata.num_row_groups >= shards  # written shard by shard
    assert pq.read_schema(sharded).equals(pq.read_schema(whole))
    pd.testing.assert_frame_equal(pd.read_parquet(sharded), pd.read_parquet(whole), rtol=1e-12)
