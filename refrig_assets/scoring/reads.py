"""Reading stored scores back: every detector's scores for the windows of one hour."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.engines.device_shards import DeviceRange


def read_scores_for_hour(
    store,
    partition_key: str,
    window_start: pd.Timestamp,
    window_end: pd.Timestamp,
    shard: DeviceRange | None = None,
    device_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Every detector's scores for the windows of one hour (whatever exists; missing is fine).

    ``shard`` keeps one range of device ids, ``device_ids`` only those devices (both filtered
    while reading)."""
    frames = []
    day_key = partition_key[:10]
    for model_id in all_model_ids():
        cfg = load_model_config(model_id)
        key = partition_key if cfg.schedule == "hourly" else day_key
        path = store.path(f"{model_id}_scores", key)
        if path.exists():
            # Filtered while reading: a daily partition holds 24 hours of a fleet's windows.
            hour = [("window_start", ">=", window_start), ("window_start", "<", window_end)]
            if shard is not None:
                hour += shard.filters()
            if device_ids is not None:
                hour.append(("device_id", "in", sorted(set(device_ids))))
            frames.append(pq.read_table(path, filters=hour).to_pandas())
    if not frames:
        return load_contract("model_scores").empty_frame()
    return pd.concat(frames, ignore_index=True)
