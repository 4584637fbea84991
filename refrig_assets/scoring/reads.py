"""Reading stored scores back: every detector's scores for the windows of one hour."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.core.storage import KEPT_FILE_BYTES, read_parquet_table
from refrig_assets.engines.device_shards import DeviceRange


def score_paths_for_hour(store, partition_key: str, schedule: str | None = None) -> list:
    """The stored score partitions that hold windows of one hour: each detector's hourly
    partition, or its daily one for a daily detector (those that exist); ``schedule``: only
    the detectors of that schedule."""
    paths = []
    for model_id in all_model_ids():
        own = load_model_config(model_id).schedule
        if schedule is not None and own != schedule:
            continue
        daily = own != "hourly"
        path = store.path(f"{model_id}_scores", partition_key[:10] if daily else partition_key)
        if path.exists():
            paths.append(path)
    return paths


def _read_filtered(path, columns: list[str] | None, filters: list) -> pa.Table:
    """``pq.read_table(path, columns=columns, filters=filters)``: a small file is read whole
    (kept within :func:`~refrig_assets.core.storage.reads_kept`, so the steps and hours of a
    range that read the same score partition share one read) and filtered in memory with the
    same expression; a larger one is filtered while it is read."""
    if os.stat(path).st_size > KEPT_FILE_BYTES:
        return pq.read_table(path, columns=columns, filters=filters)
    table = read_parquet_table(path)
    mask = _mask(table, filters)
    table = table.filter(pq.filters_to_expression(filters) if mask is None else mask)
    return table if columns is None else table.select(columns)


_COMPARISONS = {">=": pc.greater_equal, "<": pc.less, "==": pc.equal}


def _mask(table: pa.Table, filters: list) -> pa.ChunkedArray | None:
    """The rows of ``table`` that meet ``filters`` (a conjunction of the terms the hourly steps
    give: comparisons and ``in``) as a boolean mask, or None for terms it does not evaluate
    (then the expression filter does). A row whose term is null is not kept, as the expression
    filter keeps none; computed without the expression engine's plan, ~5x less CPU a read."""
    mask = None
    try:
        for column, op, value in filters:
            values = table[column]
            # the values converted as the expression converts them (a time to microseconds)
            if op == "in":
                term = pc.is_in(values, value_set=pa.array(list(value)))
            elif op in _COMPARISONS:
                term = _COMPARISONS[op](values, pa.scalar(value))
            else:
                return None
            mask = term if mask is None else pc.and_kleene(mask, term)
    except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return mask


def read_scores_for_hour(
    store,
    partition_key: str,
    window_start: pd.Timestamp,
    window_end: pd.Timestamp,
    shard: DeviceRange | None = None,
    device_ids: Iterable[str] | None = None,
    paths: list | None = None,
    columns: list[str] | None = None,
    flagged_only: bool = False,
) -> pd.DataFrame:
    """Every detector's scores for the windows of one hour (whatever exists; missing is fine).

    ``shard`` keeps one range of device ids, ``device_ids`` only those devices (both filtered
    while reading); ``paths``, the hour's :func:`score_paths_for_hour` when a caller reads the
    hour shard by shard; ``columns``, only those; ``flagged_only``, only the flagged windows
    (row groups without any are skipped unread)."""
    tables = []
    for path in score_paths_for_hour(store, partition_key) if paths is None else paths:
        # Filtered while reading: a daily partition holds 24 hours of a fleet's windows.
        hour = [("window_start", ">=", window_start), ("window_start", "<", window_end)]
        if shard is not None:
            hour += shard.filters()
        if device_ids is not None:
            hour.append(("device_id", "in", sorted(set(device_ids))))
        if flagged_only:
            hour.append(("anomaly_flag", "==", True))
        tables.append(_read_filtered(path, columns, hour))
    if not tables:
        empty = load_contract("model_scores").empty_frame()
        return empty if columns is None else empty[columns]
    return _as_one_frame(tables)


def _as_one_frame(tables: list[pa.Table]) -> pd.DataFrame:
    """The tables' rows as one frame, as converting each and concatenating the frames gives it:
    tables of one schema (their pandas metadata too, as the detectors' files have it) are
    joined in Arrow and converted once (a conversion costs more than a small hour's rows);
    others are converted one by one (pandas then unifies their types)."""
    if all(t.schema.equals(tables[0].schema, check_metadata=True) for t in tables[1:]):
        return pa.concat_tables(tables).to_pandas()
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True)
