"""The embedded feature step cuts a clean_readings file into device-id ranges computed side by
side: the windows it writes are those of the whole file, in the same order, in the same file
schema, whatever the number of ranges."""

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.quality_helpers import run_hour

from refrig_assets.core.device_ranges import device_cuts
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import embedded
from refrig_assets.simulator import SimulationConfig, simulate_fleet

START = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "2026-01-01-00:00"


@pytest.fixture(scope="module")
def clean_file(tmp_path_factory):
    """One hour of a simulated 12-device fleet with faults, cleaned, in (device_id, ts) order,
    in row groups of 100 readings (so devices straddle row groups)."""
    root = tmp_path_factory.mktemp("fleet")
    config = SimulationConfig(devices=12, hours=1, start=START, seed=11, fault_fraction=0.5)
    simulate_fleet(config, root / "landing", root / "registry.csv", root / "labels.parquet")
    registry = pd.read_csv(root / "registry.csv")
    clean, _ = run_hour(
        root / "landing", registered=tuple(registry["device_id"]), key=KEY, start=START
    )
    path = root / "clean.parquet"
    pq.write_table(pa.Table.from_pandas(clean, preserve_index=False), path, row_group_size=100)
    return path


def test_the_cuts_are_first_devices_of_row_groups_in_increasing_order(clean_file):
    meta = pq.ParquetFile(clean_file).metadata
    firsts = [meta.row_group(i).column(0).statistics.min for i in range(meta.num_row_groups)]
    cuts = device_cuts(clean_file, 4)
    assert len(cuts) == 3
    assert cuts == sorted(set(cuts))
    assert all(c in firsts and c > firsts[0] for c in cuts)
    assert device_cuts(clean_file, 1) == []


def test_a_file_out_of_device_order_is_not_cut(clean_file, tmp_path):
    shuffled = tmp_path / "shuffled.parquet"
    table = pq.read_table(clean_file)
    rows = pa.array(pd.Series(range(table.num_rows)).sample(frac=1.0, random_state=2))
    pq.write_table(table.take(rows), shuffled, row_group_size=100)
    assert device_cuts(shuffled, 4) == []


def test_a_file_with_a_reading_without_device_is_not_cut(clean_file, tmp_path):
    # every range then holds whole devices only, and the rows without one stay in no range
    frame = pq.read_table(clean_file).to_pandas()
    frame.loc[len(frame) - 1, "device_id"] = None
    keyless = tmp_path / "keyless.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), keyless, row_group_size=100)
    assert device_cuts(keyless, 4) == []


@pytest.mark.parametrize("ranges", [2, 3, 7])
def test_windows_cut_into_ranges_are_those_of_the_whole_file(clean_file, tmp_path, ranges):
    store = ParquetStore(tmp_path)
    whole = embedded.write_features(clean_file, store, KEY, dataset="whole", ranges=1)
    cut = embedded.write_features(clean_file, store, KEY, dataset="cut", ranges=ranges)
    assert len(device_cuts(clean_file, ranges)) == ranges - 1
    assert pq.read_schema(cut).equals(pq.read_schema(whole))
    expected = pd.read_parquet(whole)
    assert expected["device_id"].nunique() == 12
    pd.testing.assert_frame_equal(pd.read_parquet(cut), expected, rtol=1e-12)


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_windows_in_memory_shards_are_those_of_the_whole_file(clean_file, tmp_path, shards):
    # Memory shards (device ranges computed one after the other, each on its own connection,
    # as the memory budget asks for a large fleet) write the whole file's windows, in order.
    store = ParquetStore(tmp_path)
    whole = embedded.write_features(clean_file, store, KEY, dataset="whole", ranges=1, shards=1)
    sharded = embedded.write_features(
        clean_file, store, KEY, dataset="sharded", ranges=2, shards=shards
    )
    assert pq.ParquetFile(sharded).metadata.num_row_groups >= shards  # written shard by shard
    # the same schema, device_id's not-null marker included
    assert pq.read_schema(sharded).equals(pq.read_schema(whole))
    assert not pq.read_schema(sharded).field("device_id").nullable
    expected = pd.read_parquet(whole)
    pd.testing.assert_frame_equal(pd.read_parquet(sharded), expected, rtol=1e-12)


def test_the_memory_budget_sets_the_feature_shards(clean_file, tmp_path, monkeypatch):
    # Held to a budget that one shard of these readings exceeds, the step writes in shards.
    from dataclasses import replace

    budget = embedded.load_memory_budget()
    rows = pq.ParquetFile(clean_file).metadata.num_rows
    tight = replace(budget, reading_bytes=budget.memory_budget_mb * 2**20 * 3 // rows + 1)
    assert tight.shards_for(rows) == 4
    monkeypatch.setattr(embedded, "load_memory_budget", lambda: tight)
    path = embedded.write_features(clean_file, ParquetStore(tmp_path), KEY, ranges=1)
    assert pq.ParquetFile(path).metadata.num_row_groups >= 4
    whole = embedded.write_features(
        clean_file, ParquetStore(tmp_path / "whole"), KEY, ranges=1, shards=1
    )
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(whole), rtol=1e-12)
