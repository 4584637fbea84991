"""The score steps of one process share their reads of a feature hour: each detector's scores
are the same as when it reads the hour alone (``ParquetStore.read_many``, hour after hour),
whichever detector reads first, with the look-back hour (stored out of device order), in device
shards and after a partition is rewritten; the rows are those of ``read_many`` in device and
window-start order; and the columns an earlier detector read are not decoded again."""

from datetime import UTC, datetime

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

import refrig_assets.scoring.feature_reads as feature_reads
import refrig_assets.scoring.runs as runs
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import hour_shards
from refrig_assets.scoring.feature_reads import forget_feature_reads, read_feature_hours
from refrig_assets.scoring.runs import score_runs
from refrig_assets.training.fit import train_detector
from refrig_assets_tests.scoring.test_hourly_shards import hour_start, key_of
from tools.benchmarks.scoring import synthetic_features

DEVICES = 24
HOURS = 7  # five hours of training, the hour before, the hour scored
HOURLY_MODELS = ["statistical_baseline", "isolation_forest", "pca_reconstruction"]
SCORED_AT = datetime(2026, 1, 2, tzinfo=UTC)
FAULTY = ["dev-000004", "dev-000013"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Feature hours of 24 devices (two faulty in the last two hours), the last hour written
    by DuckDB (microseconds) and the others by pandas, and the trained hourly detectors."""
    root = tmp_path_factory.mktemp("shared_reads")
    store = ParquetStore(root / "data")
    features = synthetic_features(DEVICES, HOURS, seed=5)
    late = (features["window_start"] >= hour_start(HOURS - 2)) & features["device_id"].isin(FAULTY)
    for col in features.columns:
        if col.startswith(("current_compressor", "pressure_low_side")):
            features.loc[late, col] *= 2.5
        elif col.startswith("temperature_evaporator") and not col.endswith("_std"):
            features.loc[late, col] += 9.0
    ids = sorted(features["device_id"].unique())
    registry = pd.DataFrame(
        {
            "device_id": ids,
            "cohort": features.groupby("device_id")["cohort"].first().reindex(ids).to_numpy(),
        }
    )
    for h in range(HOURS):
        part = features[features["window_start"].dt.floor("h") == hour_start(h)]
        part = part.drop(columns="cohort").reset_index(drop=True)
        if h == HOURS - 2:  # rows out of device order: the look-back hour is sorted on reading
            part = part.sample(frac=1.0, random_state=0).reset_index(drop=True)
        if h == HOURS - 1:
            con = duckdb.connect()
            con.register("part", part)
            store.write_from_duckdb("device_features", key_of(h), con, "SELECT * FROM part")
            con.close()
        else:
            store.write("device_features", key_of(h), part)
    train = features[features["window_start"] < hour_start(HOURS - 2)]
    detectors = {
        m: train_detector(load_model_config(m), train, "5 hours", "test")[0] for m in HOURLY_MODELS
    }
    return store, registry, detectors


def scores_of(store, registry, detector, shards=None) -> pd.DataFrame:
    pieces = list(
        score_runs(store, registry, detector, "1", [key_of(HOURS - 1)], SCORED_AT, shards=shards)
    )
    return pd.concat([s for _, s in pieces], ignore_index=True)


def read_alone(store, keys, columns, filters=None, dataset="device_features", keep=True):
    """The read before the reads were shared."""
    return store.read_many(dataset, keys, columns=columns, filters=filters)


def read_sorted(store, keys, columns, filters=None):
    """``read_many``'s rows, those of several partitions in device and window-start order (a
    stable sort of the hours one after the other)."""
    order = ["device_id", "window_start"]
    frame = read_alone(store, keys, [*columns, *(k for k in order if k not in columns)], filters)
    if len(store.existing_paths("device_features", keys)) > 1:
        frame = frame.sort_values(order, kind="stable", ignore_index=True)
    return frame[columns]


@pytest.fixture
def decoded(monkeypatch):
    """The columns each Parquet read of the shared reads decodes."""
    seen: list[tuple[str, ...]] = []
    real = pq.read_table

    def spy(path, columns=None, filters=None, **kw):
        seen.append(tuple(columns or ()))
        return real(path, columns=columns, filters=filters, **kw)

    monkeypatch.setattr(feature_reads.pq, "read_table", spy)
    return seen


@pytest.mark.parametrize("order", [HOURLY_MODELS, HOURLY_MODELS[::-1]])
@pytest.mark.parametrize("shard_count", [None, 2])
def test_scores_are_those_of_reading_alone(world, monkeypatch, decoded, order, shard_count):
    store, registry, detectors = world
    shards = None if shard_count is None else hour_shards(store, [key_of(HOURS - 1)], shard_count)
    forget_feature_reads()
    shared = {m: scores_of(store, registry, detectors[m], shards) for m in order}
    reads = list(decoded)
    with monkeypatch.context() as m:
        m.setattr(runs, "read_feature_hours", read_alone)
        alone = {m_: scores_of(store, registry, detectors[m_], shards) for m_ in order}
    for model_id in order:
        assert len(shared[model_id]) > 0
        pd.testing.assert_frame_equal(shared[model_id], alone[model_id])
    assert any(shared[m]["anomaly_flag"].any() for m in order)
    # Every read after the first detector's decodes only columns no earlier detector read.
    pieces = 1 if shards is None else len(shards)
    per_detector = 2 * pieces  # the hour before and the hour, per device shard
    if shards is None:
        first = {c for cols in reads[:per_detector] for c in cols}
        later = {c for cols in reads[per_detector:] for c in cols}
        assert not first & later
        needed = sum(len(detectors[m].required_columns) for m in order)
        assert sum(len(cols) for cols in reads) < needed * 2
    forget_feature_reads()


def test_a_rewritten_partition_is_read_again(world, tmp_path):
    store, _, detectors = world
    copy = ParquetStore(tmp_path / "data")
    key = key_of(HOURS - 1)
    frame = store.read("device_features", key)
    copy.write("device_features", key, frame)
    columns = detectors["isolation_forest"].required_columns
    filters = [("window_start", ">=", hour_start(HOURS - 1))]
    forget_feature_reads()
    before = read_feature_hours(copy, [key], columns[:5], filters)
    changed = frame.assign(sensor_completeness=frame["sensor_completeness"] * 0.5)
    copy.write("device_features", key, changed)
    after = read_feature_hours(copy, [key], columns, filters)
    pd.testing.assert_frame_equal(after, read_sorted(copy, [key], columns, filters))
    assert not after["sensor_completeness"].equals(before["sensor_completeness"])
    forget_feature_reads()


@pytest.mark.parametrize(
    "filters",
    [
        None,
        [("window_start", ">=", hour_start(HOURS - 1) - pd.Timedelta(minutes=45))],
        [("device_id", ">=", "dev-000010"), ("device_id", "<", "dev-000020")],
    ],
)
def test_reads_of_column_sets_in_turn_are_those_of_read_many(world, filters):
    store, _, _ = world
    keys = [key_of(HOURS - 3), key_of(HOURS - 2), key_of(HOURS - 1), "2099-01-01-00:00"]
    all_columns = list(store.read("device_features", key_of(0)).columns)
    sets = [all_columns[:8], all_columns[4:20], all_columns[::-1][:12], all_columns[:3]]
    forget_feature_reads()
    for columns in sets:
        got = read_feature_hours(store, keys, columns, filters)
        pd.testing.assert_frame_equal(got, read_sorted(store, keys, columns, filters))
    assert read_feature_hours(store, ["2099-01-01-00:00"], all_columns[:3]).empty
    other = [("device_id", "in", ["dev-000001", "dev-000002"])]
    got = read_feature_hours(store, keys, all_columns[:6], other)
    pd.testing.assert_frame_equal(got, read_sorted(store, keys, all_columns[:6], other))
    one = read_feature_hours(store, [key_of(HOURS - 2)], all_columns[:6])  # one file: as stored
    pd.testing.assert_frame_equal(one, read_alone(store, [key_of(HOURS - 2)], all_columns[:6]))
    forget_feature_reads()


def test_a_read_not_kept_is_read_again(world, decoded):
    store, _, detectors = world
    keys = [key_of(HOURS - 2), key_of(HOURS - 1)]
    columns = detectors["statistical_baseline"].required_columns
    forget_feature_reads()
    first = read_feature_hours(store, keys, columns, keep=False)
    again = read_feature_hours(store, keys, columns)
    kept = read_feature_hours(store, keys, columns)
    assert len(decoded) == 2 * len(keys)  # the first two reads decode each file, the third none
    pd.testing.assert_frame_equal(first, read_sorted(store, keys, columns))
    pd.testing.assert_frame_equal(again, first)
    pd.testing.assert_frame_equal(kept, first)
    forget_feature_reads()
