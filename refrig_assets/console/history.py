"""A device's recent feature and score history, read from the Parquet datasets.

Only the partition files that overlap the requested period are opened, and DuckDB pushes the
device filter into the Parquet scan, so a device page stays quick on fleet-sized partitions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd

from refrig_assets.core.storage import UNPARTITIONED, ParquetStore

FEATURES = "device_features"
log = logging.getLogger(__name__)


def partition_span(stem: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The period a partition file covers: ``2026-01-01T05`` an hour, ``2026-01-01`` a day."""
    if stem == UNPARTITIONED:
        return None
    try:
        if len(stem) == 13 and stem[10] == "T":
            start = pd.Timestamp(f"{stem}:00", tz="UTC")
            return start, start + timedelta(hours=1)
        start = pd.Timestamp(stem, tz="UTC")
    except ValueError:
        return None
    return start, start + timedelta(days=1)


def partition_paths(
    store: ParquetStore, dataset: str, start: pd.Timestamp, end: pd.Timestamp
) -> list[Path]:
    """Files of ``dataset`` that may hold windows starting in ``[start, end)``."""
    paths = []
    for stem in store.partitions(dataset):
        span = partition_span(stem)
        if span is None or (span[0] < end and span[1] > start):
            paths.append(store.root / dataset / f"{stem}.parquet")
    return paths


def oldest_partition_start(store: ParquetStore, dataset: str = FEATURES) -> pd.Timestamp | None:
    """Where ``dataset``'s oldest partition begins (None without time partitions)."""
    spans = [partition_span(s) for s in store.partitions(dataset)]
    starts = [span[0] for span in spans if span is not None]
    return min(starts) if starts else None


def newest_window_end(store: ParquetStore, dataset: str = FEATURES) -> pd.Timestamp | None:
    """The end of the newest window in the newest partition of ``dataset``, if any."""
    stems = [s for s in store.partitions(dataset) if partition_span(s) is not None]
    if not stems:
        return None
    newest = max(stems, key=lambda s: partition_span(s)[0])
    path = store.root / dataset / f"{newest}.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        query = f"SELECT max(window_end) FROM read_parquet({_sql_text(path)})"
        value = con.execute(query).fetchone()[0]
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def _sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def read_device_rows(
    store: ParquetStore,
    dataset: str,
    device_id: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Rows of one device whose ``window_start`` lies in ``[start, end)``, oldest first."""
    paths = partition_paths(store, dataset, start, end)
    try:
        frame = _device_rows(paths, device_id, start, end, columns)
    except duckdb.Error:
        # A damaged partition file must not take the device page down: leave it out (a gap in
        # the charts) and name it in the log.
        frames = []
        for path in paths:
            try:
                frames.append(_device_rows([path], device_id, start, end, columns))
            except duckdb.Error as exc:
                first = str(exc).splitlines()[0]
                log.warning(
                    "device page of %s leaves out unreadable %s: %s", device_id, path, first
                )
        frame = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        if len(frame):
            frame = frame.sort_values("window_start", kind="stable", ignore_index=True)
    for column in ("window_start", "window_end", "scored_at"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _device_rows(
    paths: list[Path],
    device_id: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    columns: list[str] | None,
) -> pd.DataFrame:
    if not paths:
        return pd.DataFrame(columns=columns or [])
    select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    files = ", ".join(_sql_text(p) for p in paths)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(
            f"SELECT {select} FROM read_parquet([{files}], union_by_name = true) "
            "WHERE device_id = ? AND CAST(window_start AS TIMESTAMPTZ) >= ? "
            "AND CAST(window_start AS TIMESTAMPTZ) < ? "
            "ORDER BY window_start",
            [device_id, start.to_pydatetime(), end.to_pydatetime()],
        ).df()


@dataclass(frozen=True)
class DeviceHistory:
    """Feature windows and every model's scores of one device over ``[start, end)``."""

    device_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    features: pd.DataFrame
    scores: pd.DataFrame


def device_history(
    store: ParquetStore,
    device_id: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    model_ids: list[str],
    feature_columns: list[str] | None = None,
) -> DeviceHistory:
    """Read a device's features (optionally some columns only) and its scores from each model."""
    columns = None
    if feature_columns is not None:
        columns = list(dict.fromkeys(["device_id", "window_start", "window_end", *feature_columns]))
    features = read_device_rows(store, FEATURES, device_id, start, end, columns)
    frames = []
    for model_id in model_ids:
        scores = read_device_rows(store, f"{model_id}_scores", device_id, start, end)
        if len(scores):
            frames.append(scores)
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return DeviceHistory(device_id, start, end, features, scores)
