"""The quality step's shard bounds come from the hour file's row-group statistics when it is in
device order (no pass over the hour), and the partitions are those of the counted bounds.

Before, every sharded hour grouped all its readings by device to place the bounds: a whole
extra pass over the hour (about 3 CPU-s at 1M devices). Any bounds between devices give the
same result; this holds the statistics' bounds to it and to the pass where they cannot be used.
"""

import pandas as pd
import pyarrow as pa
import pytest

import refrig_assets.quality.shards as shards_module
from refrig_assets.core.device_ranges import device_cuts
from refrig_assets.core.duck import connect, sql_str
from refrig_assets.core.storage import ParquetStore
from refrig_assets.quality.shards import (
    clean_hour_in_shards,
    hour_shard_bounds,
    registry_in_shard,
    shard_bounds,
)
from refrig_assets_tests.quality.test_quality_shards import (
    CONTRACT,
    KEYS,
    TAILS,
    Statements,
    hours,  # noqa: F401  (the module's fixture)
    in_device_order,
    rows,
    summary,
)


def _clean(path, registered, out: ParquetStore, shards: int):
    con = connect()
    try:
        _, result = clean_hour_in_shards(
            con, out, KEYS[0], path, CONTRACT, registered, shards=shards, tails_dataset=TAILS
        )
    finally:
        con.close()
    return result


def test_bounds_of_an_hour_in_device_order_come_from_its_statistics(hours, tmp_path):  # noqa: F811
    source, _ = hours
    ordered = in_device_order(source, tmp_path / "ordered.parquet")
    spy = Statements(connect())
    try:
        bounds = hour_shard_bounds(spy, ordered, f"read_parquet({sql_str(str(ordered))})", 3)
    finally:
        spy.close()
    assert bounds == device_cuts(ordered, 3, nulls=True) and len(bounds) == 2
    assert spy.sql == []  # no pass over the hour


def test_an_hour_of_one_row_group_is_cut_by_the_counting_pass(hours):  # noqa: F811
    source, _ = hours
    path = source.path("sensor_readings", KEYS[0])
    relation = f"read_parquet({sql_str(str(path))})"
    con = connect()
    try:
        assert hour_shard_bounds(con, path, relation, 3) == shard_bounds(con, relation, 3)
        assert len(hour_shard_bounds(con, path, relation, 3)) == 2
        assert hour_shard_bounds(con, path, relation, 1) == []
    finally:
        con.close()


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_statistics_bounds_give_the_partitions_of_the_counted_bounds(
    hours,  # noqa: F811
    tmp_path,
    monkeypatch,
    shards,
):
    source, registered = hours
    ordered = in_device_order(source, tmp_path / "ordered.parquet")
    assert len(device_cuts(ordered, shards, nulls=True)) == shards - 1  # really cut by them
    new = ParquetStore(tmp_path / "statistics")
    got = _clean(ordered, registered, new, shards)
    with monkeypatch.context() as m:  # the bounds as the counting pass places them
        m.setattr(
            shards_module,
            "hour_shard_bounds",
            lambda con, _source, relation, n: shard_bounds(con, relation, n),
        )
        old = ParquetStore(tmp_path / "counted")
        wanted = _clean(ordered, registered, old, shards)
    whole = ParquetStore(tmp_path / "whole")
    one = _clean(ordered, registered, whole, 1)
    assert wanted.flag_counts["DUPLICATE"] > 0 and wanted.flag_counts["STUCK_SENSOR"] > 0
    for dataset in ("clean_readings", TAILS):
        assert rows(new.path(dataset, KEYS[0])).equals(rows(old.path(dataset, KEYS[0])))
        assert rows(new.path(dataset, KEYS[0])).equals(rows(whole.path(dataset, KEYS[0])))
    for expected in (wanted, one):
        pd.testing.assert_frame_equal(got.quarantine, expected.quarantine)
        assert summary(got) == summary(expected)


def test_each_shard_looks_its_devices_up_in_its_own_part_of_the_registry(hours, tmp_path):  # noqa: F811
    source, registered = hours
    ordered = in_device_order(source, tmp_path / "ordered.parquet")
    bounds = device_cuts(ordered, 3, nulls=True)
    with_null = pa.concat_tables(
        [registered, pa.table({"device_id": pa.array([None], pa.string())})]
    )
    parts = [registry_in_shard(with_null, bounds, k) for k in range(len(bounds) + 1)]
    ids = [p.column("device_id").to_pylist() for p in parts]
    assert all(None in part for part in ids)  # a NULL id decides NOT IN in every shard
    assert sorted(i for part in ids for i in part if i is not None) == sorted(
        registered.column("device_id").to_pylist()
    )
    assert all(len(part) < len(with_null) for part in ids)
    for k, part in enumerate(ids):
        assert all(i is None or (k == 0 or i >= bounds[k - 1]) for i in part)
        assert all(i is None or (k == len(bounds) or i < bounds[k]) for i in part)


@pytest.mark.parametrize("null_id", [False, True], ids=["registry", "registry with a NULL id"])
def test_unregistered_devices_are_those_of_the_whole_registry(
    hours,  # noqa: F811
    tmp_path,
    null_id,
):
    source, registered = hours
    if null_id:
        registered = pa.concat_tables(
            [registered, pa.table({"device_id": pa.array([None], pa.string())})]
        )
    ordered = in_device_order(source, tmp_path / "ordered.parquet")
    one = _clean(ordered, registered, ParquetStore(tmp_path / "one"), 1)
    three = _clean(ordered, registered, ParquetStore(tmp_path / "three"), 3)
    assert (one.flag_counts["UNREGISTERED_DEVICE"] > 0) != null_id
    assert summary(three) == summary(one)
    pd.testing.assert_frame_equal(three.quarantine, one.quarantine)
    for dataset in ("clean_readings", TAILS):
        assert rows(ParquetStore(tmp_path / "three").path(dataset, KEYS[0])).equals(
            rows(ParquetStore(tmp_path / "one").path(dataset, KEYS[0]))
        )
