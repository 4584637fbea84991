"""The device-shard machinery the hourly steps share: a shard's query streamed to its partition
(written on a second thread while DuckDB computes the next batch) gives the same file as
writing each batch on the reading thread, and an hour's device ranges are computed once per
version of its feature file, whichever step asks."""

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import device_shards
from refrig_assets.engines.device_shards import DeviceRange, hour_shards, stream_query

QUERY = (
    "SELECT 'dev-' || lpad(CAST(i // 7 AS VARCHAR), 5, '0') AS device_id, i AS n, "
    "CASE WHEN i % 11 = 0 THEN NULL ELSE i * 0.5 END AS value "
    "FROM range(10000) t(i) ORDER BY i"
)


def _written_on_reading_thread(con, sql: str, out, batch_rows: int) -> None:
    """Reference: every batch written where it is read, one after the other."""
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    for batch in reader:
        if batch.num_rows:
            out.write(pa.Table.from_batches([batch]))
    if out.schema is None:
        out.schema = reader.schema


@pytest.mark.parametrize("batch_rows", [1000, 4096, 100_000])
def test_streamed_query_is_the_same_file_as_written_batch_by_batch(tmp_path, batch_rows):
    store = ParquetStore(tmp_path)
    con = duckdb.connect()
    with store.writer("streamed", "k", dictionary=False) as out:
        stream_query(con, QUERY, out, batch_rows)
        stream_query(con, QUERY.replace("range(10000)", "range(10000, 12000)"), out, batch_rows)
    with store.writer("reference", "k", dictionary=False) as out:
        _written_on_reading_thread(con, QUERY, out, batch_rows)
        _written_on_reading_thread(
            con, QUERY.replace("range(10000)", "range(10000, 12000)"), out, batch_rows
        )
    streamed, reference = store.path("streamed", "k"), store.path("reference", "k")
    assert streamed.read_bytes() == reference.read_bytes()
    table = pq.read_table(streamed)
    assert table["n"].to_pylist() == list(range(12000))  # in the queries' order
    assert pq.ParquetFile(streamed).metadata.num_row_groups == -(-10000 // batch_rows) + -(
        -2000 // batch_rows
    )


def test_a_query_without_rows_fixes_the_schema(tmp_path):
    store = ParquetStore(tmp_path)
    with store.writer("empty", "k") as out:
        stream_query(duckdb.connect(), QUERY.replace("ORDER BY i", "LIMIT 0"), out, 100)
    table = pq.read_table(store.path("empty", "k"))
    assert table.num_rows == 0
    assert table.schema.names == ["device_id", "n", "value"]


def test_a_failed_write_stops_the_query_and_leaves_no_partition(tmp_path):
    store = ParquetStore(tmp_path)

    class Failing:
        schema = None
        writes = 0

        def write(self, table):
            Failing.writes += 1
            if Failing.writes == 2:
                raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        stream_query(duckdb.connect(), QUERY, Failing(), 1000)
    assert Failing.writes == 2  # the third batch was never handed over
    with pytest.raises(ValueError), store.writer("failed", "k") as out:
        out.write(pd.DataFrame({"a": [1]}))
        raise ValueError("the shard's query failed")
    assert not store.path("failed", "k").exists()


def _features(devices: list[str], windows: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device_id": [d for d in devices for _ in range(windows)],
            "window_start": pd.Timestamp("2026-01-01", tz="UTC"),
            "reading_count": [1 + (i % 5) for i in range(len(devices) * windows)],
        }
    )


def test_hour_ranges_are_computed_once_per_version_of_the_feature_file(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    key = "2026-01-01-00:00"
    store.write("device_features", key, _features([f"a-{i:03d}" for i in range(60)]))
    computed = []
    original = device_shards.device_ranges

    def counting(ids, weights, shards):
        computed.append(shards)
        return original(ids, weights, shards)

    monkeypatch.setattr(device_shards, "device_ranges", counting)
    first = hour_shards(store, [key], shards=3)
    again = [hour_shards(store, [key], shards=3) for _ in range(5)]  # five more steps
    assert computed == [3]
    assert all(r == first for r in again)
    ids = pd.Series([f"a-{i:03d}" for i in range(60)])
    assert len(first) == 3
    assert sum(int(r.mask(ids).sum()) for r in first) == 60

    # The hour rewritten with other devices: its ranges are those of the new file.
    store.write("device_features", key, _features([f"b-{i:03d}" for i in range(90)]))
    rewritten = hour_shards(store, [key], shards=3)
    assert computed == [3, 3]
    assert rewritten != first
    fresh = original(
        pa.array([f"b-{i:03d}" for i in range(90) for _ in range(4)]),
        pa.array(_features([f"b-{i:03d}" for i in range(90)])["reading_count"]),
        3,
    )
    assert rewritten == fresh
    assert hour_shards(store, [key], shards=4) != rewritten  # another shard count
    assert hour_shards(store, [key], shards=1) == [DeviceRange()]


@pytest.mark.parametrize("shards", [2, 3, 7, 50])
@pytest.mark.parametrize("weighted", [True, False])
def test_ranges_of_rows_in_device_order_are_those_of_any_order(shards, weighted):
    # Windows of 40 devices in device order (a feature file), some devices with several
    # windows, null weights, a device with zero weight and rows without a device id; the same
    # rows shuffled take the hashing path.
    import numpy as np

    rng = np.random.default_rng(5)
    devices = [f"d-{i:03d}" for i in range(40)]
    ids = [d for d in devices for _ in range(int(rng.integers(1, 5)))]
    weights = [float(rng.integers(0, 60)) for _ in ids]
    weights[3] = None
    weights[ids.index("d-007") : ids.index("d-008")] = [0.0] * ids.count("d-007")
    ids_in_order = pa.array(ids + [None, None])
    w_in_order = pa.array(weights + [5.0, 1.0]) if weighted else None
    order = rng.permutation(len(ids) + 2)
    shuffled = pa.array([(ids + [None, None])[i] for i in order])
    w_shuffled = pa.array([(weights + [5.0, 1.0])[i] for i in order]) if weighted else None

    in_order = device_shards.device_ranges(ids_in_order, w_in_order, shards)

    assert in_order == device_shards.device_ranges(shuffled, w_shuffled, shards)
    assert 1 < len(in_order) <= min(shards, 40)
    assert device_shards.device_ranges(pa.array(["only"] * 3), None, shards) == [DeviceRange()]
    assert device_shards.device_ranges(pa.array([None, None], pa.string()), None, 3) == [
        DeviceRange()
    ]


def test_required_columns_are_written_not_null_and_a_null_in_one_fails(tmp_path):
    store = ParquetStore(tmp_path)
    with store.writer("marked", "k", dictionary=False) as out:
        stream_query(duckdb.connect(), QUERY, out, 4096, required=["device_id", "n"])
        stream_query(duckdb.connect(), QUERY.replace("10000", "20"), out, 4096)
    schema = pq.read_schema(store.path("marked", "k"))
    assert [f.nullable for f in schema] == [False, False, True]
    assert pq.read_table(store.path("marked", "k")).num_rows == 10020

    with pytest.raises(ValueError, match="null"), store.writer("broken", "k") as out:
        stream_query(duckdb.connect(), QUERY, out, 4096, required=["value"])  # has NULLs
    assert not store.path("broken", "k").exists()
