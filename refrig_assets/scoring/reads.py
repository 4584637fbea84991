"""Reading stored scores back: every detector's scores for the windows of one hour."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config


def read_scores_for_hour(
    store, partition_key: str, window_start: pd.Timestamp, window_end: pd.Timestamp
) -> pd.DataFrame:
    """Every detector's scores for the windows of one hour (whatever exists; missing is fine)."""
    frames = []
    day_key = partition_key[:10]
    for model_id in all_model_ids():
        cfg = load_model_config(model_id)
        key = partition_key if cfg.schedule == "hourly" else day_key
        path = store.path(f"{model_id}_scores", key)
        if path.exists():
            # Filtered while reading: a daily partition holds 24 hours of a fleet's windows.
            hour = [("window_start", ">=", window_start), ("window_start", "<", window_end)]
            frames.append(pq.read_table(path, filters=hour).to_pandas())
    if not frames:
        return load_contract("model_scores").empty_frame()
    return pd.concat(frames, ignore_index=True)
