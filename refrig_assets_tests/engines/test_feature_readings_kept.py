"""The readings behind a feature hour are counted once per version of its file and process,
for as many hours as a history backfill has: its scores step counts every hour before its
hour chain counts them again, and the chain reads no feature file for the count. A rewritten
hour is counted again."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import device_shards
from refrig_assets.engines.device_shards import feature_file_readings

HOURS = 300  # more hours than one range of the runner, fewer than the cache holds


def key(h: int) -> str:
    return (pd.Timestamp("2026-01-01") + pd.Timedelta(hours=h)).strftime("%Y-%m-%d-%H:%M")


def test_every_hour_of_a_long_history_is_counted_once(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    for h in range(HOURS):
        frame = pd.DataFrame({"device_id": ["a", "b"], "reading_count": [h, 1]})
        store.write("device_features", key(h), frame)
    device_shards._readings.cache_clear()
    reads: list[str] = []
    real = pq.read_table

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counted)
    paths = [store.path("device_features", key(h)) for h in range(HOURS)]
    first = [feature_file_readings(p) for p in paths]  # the scores step, hour by hour
    again = [feature_file_readings(p) for p in paths]  # the hour chain, hour by hour
    assert first == again == [h + 1 for h in range(HOURS)]
    assert len(reads) == HOURS

    store.write(
        "device_features", key(7), pd.DataFrame({"device_id": ["a"], "reading_count": [40]})
    )
    assert feature_file_readings(paths[7]) == 40
    assert len(reads) == HOURS + 1
