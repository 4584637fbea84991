"""read_scores_for_hour gives what pyarrow's filtered read of each score partition gives, for
every way the hourly steps call it; within a range a small partition is read from disk once for
all of them (the steps and hours of a range share it), a large one is filtered while read."""

from contextlib import nullcontext

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from refrig_assets.core import storage
from refrig_assets.core.storage import ParquetStore, reads_kept
from refrig_assets.engines.device_shards import DeviceRange
from refrig_assets.scoring import reads
from refrig_assets.scoring.reads import read_scores_for_hour

KEY = "2026-01-01-05:00"
START = pd.Timestamp("2026-01-01 05:00", tz="UTC")
MODELS = ("isolation_forest", "pca_reconstruction")


def _scores(model: str) -> pd.DataFrame:
    """Windows of 2026-01-01 04:00-07:00 (the hour and its neighbours) of six devices."""
    rng = np.random.default_rng(len(model))
    starts = pd.date_range("2026-01-01 04:00", periods=12, freq="15min", tz="UTC")
    rows = [(f"dev-{d:06d}", s) for d in range(6) for s in starts]
    frame = pd.DataFrame(rows, columns=["device_id", "window_start"])
    frame["window_end"] = frame["window_start"] + pd.Timedelta(minutes=15)
    frame["model_id"] = model
    frame["anomaly_score"] = rng.random(len(frame))
    frame.loc[3, "anomaly_score"] = np.nan
    frame["anomaly_flag"] = pd.array(frame["anomaly_score"] > 0.7, dtype="boolean")
    frame.loc[5, "anomaly_flag"] = pd.NA
    return frame


CALLS = [
    {"columns": ["model_id"]},
    {"flagged_only": True},
    {"columns": ["device_id", "window_start", "window_end", "anomaly_score"]},
    {},
    {"shard": DeviceRange(None, "dev-000003")},
    {"shard": DeviceRange("dev-000002", "dev-000005"), "flagged_only": True},
    {"device_ids": ["dev-000004", "dev-000001", "unknown"]},
]


@pytest.fixture
def store(tmp_path) -> ParquetStore:
    store = ParquetStore(tmp_path)
    for model in MODELS:
        store.write(f"{model}_scores", KEY, _scores(model))
    return store


def _filtered_while_read(monkeypatch):
    """Every read filtered while it is read, as pyarrow's read_table(filters=) does."""
    monkeypatch.setattr(
        reads, "_read_filtered", lambda p, c, f: pq.read_table(p, columns=c, filters=f)
    )


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kept", [False, True])
def test_the_same_rows_as_a_read_filtered_while_read(store, monkeypatch, call, kept):
    end = START + pd.Timedelta(hours=1)
    with reads_kept() if kept else nullcontext():
        found = read_scores_for_hour(store, KEY, START, end, **call)
    _filtered_while_read(monkeypatch)
    expected = read_scores_for_hour(store, KEY, START, end, **call)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(found, expected)


def test_a_range_reads_a_small_partition_once_for_every_call(store, monkeypatch):
    opened: list[str] = []
    plain = pq.read_table

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return plain(path, *args, **kwargs)

    monkeypatch.setattr(storage.pq, "read_table", spy)
    with reads_kept():
        for call in CALLS:
            read_scores_for_hour(store, KEY, START, START + pd.Timedelta(hours=1), **call)
    assert sorted(opened) == sorted(str(store.path(f"{m}_scores", KEY)) for m in MODELS)


def test_a_large_partition_is_filtered_while_read(store, monkeypatch):
    monkeypatch.setattr(reads, "KEPT_FILE_BYTES", 0)
    monkeypatch.setattr(
        reads, "read_parquet_table", lambda *a, **k: pytest.fail("read whole into memory")
    )
    with reads_kept():
        found = read_scores_for_hour(store, KEY, START, START + pd.Timedelta(hours=1))
    assert len(found) == 6 * 4 * len(MODELS)
