"""One hour of batch alerts and device status, generated one device shard at a time.

Alert generation looks at one device at a time (model agreement per device and window, the
dedup against the device's earlier alerts), so the hour's scores are read, turned into alerts
and dropped one range of device ids at a time
(:func:`~refrig_assets.engines.device_shards.hour_shards`); only the alerts, a small share of
the windows, are kept. The result is the same for any shard count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from refrig_assets.alerts.device_status import SCORE_COLUMNS, TrendSettings, device_status
from refrig_assets.alerts.generation import generate_alerts
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import WHOLE_FLEET, DeviceRange, registry_parts
from refrig_assets.scoring.reads import read_scores_for_hour, score_paths_for_hour


def hourly_score_paths(store: ParquetStore, partition_key: str) -> list:
    """The stored score partitions an hourly step (alerts, streaming reconciliation, device
    status) reads for one hour: the hourly detectors' (those that exist).

    A daily detector's day is scored after that day's hours have alerted (``daily_scoring`` runs
    at 03:00 for the day before, ``refrig pipeline run`` after its hour chain), so an hour that
    read it would alert on it only when the hour runs again: a rerun would differ from the first
    run. Daily scores reach the backtest and monitoring, not the hourly alerts."""
    return score_paths_for_hour(store, partition_key, schedule="hourly")


@dataclass
class HourAlerts:
    """The hour's alerts and which detectors had scores for it."""

    alerts: pd.DataFrame
    models_present: list[str]


def alerts_in_shards(
    store: ParquetStore,
    partition_key: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    registry: pd.DataFrame,
    previous_alerts: pd.DataFrame | Callable[[], pd.DataFrame],
    run_id: str,
    shards: list[DeviceRange] | None = None,
) -> HourAlerts:
    """:func:`~refrig_assets.alerts.generation.generate_alerts` over the hourly detectors' scores
    of the hour [start, end) (:func:`hourly_score_paths`), read and alerted one device range of
    ``shards`` at a time. ``previous_alerts``: the earlier alerts the dedup looks at, or a
    function giving them, called once and only when some window is flagged (most hours of a
    history have none, and need not query the alert store)."""
    frames, models = [], set()
    earlier: list[pd.DataFrame] = []
    paths = hourly_score_paths(store, partition_key)
    shards = shards or WHOLE_FLEET
    # Each shard's alerts look up their devices in that shard's part of the registry only.
    registered = registry_parts(registry, shards)
    for shard, devices in zip(shards, registered, strict=True):
        present = read_scores_for_hour(
            store, partition_key, start, end, shard=shard, paths=paths, columns=["model_id"]
        )
        models.update(present["model_id"].unique().tolist())
        del present
        # Alerts come from flagged windows only: the others are never read into memory.
        scores = read_scores_for_hour(
            store, partition_key, start, end, shard=shard, paths=paths, flagged_only=True
        )
        if scores.empty:  # no flagged window in the shard: no alert (most hours)
            continue
        if not earlier:
            earlier.append(previous_alerts() if callable(previous_alerts) else previous_alerts)
        previous = earlier[0]
        if len(previous):
            previous = previous[shard.mask(previous["device_id"])]
        alerts = generate_alerts(scores, devices, previous, partition_key, run_id)
        del scores
        if len(alerts):
            frames.append(alerts)
    alerts = (
        pd.concat(frames, ignore_index=True)
        if frames
        else load_contract("device_alerts").empty_frame()
    )
    return HourAlerts(alerts, sorted(models))


def status_in_shards(
    store: ParquetStore,
    hours: list[pd.Timestamp],
    registry: pd.DataFrame,
    open_alerts: pd.Series,
    as_of: pd.Timestamp,
    settings: TrendSettings,
    shards: list[DeviceRange] | None = None,
    read: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """:func:`~refrig_assets.alerts.device_status.device_status` over the hourly detectors' scores
    of ``hours`` (each hour's windows, :func:`hourly_score_paths`), read one device range of
    ``shards`` at a time. A device's status depends on its own scores only, and each range's rows
    come sorted by device, so the ranges in order give the whole fleet's rows.

    ``read``: the hours' scores already read, by partition key, kept by a caller that runs
    consecutive hours (the trend's hours overlap) while the scores do not change; used, and
    filled with ``hours`` (only those), when the fleet is one device range."""
    frames: list[pd.DataFrame] = []
    keys = [h.strftime("%Y-%m-%d-%H:%M") for h in hours]
    shards = shards or WHOLE_FLEET
    kept = read if read is not None and len(shards) == 1 else {}
    for key in [k for k in kept if k not in keys]:
        del kept[key]
    paths = {key: hourly_score_paths(store, key) for key in keys if key not in kept}
    for shard, devices in zip(shards, registry_parts(registry, shards), strict=True):
        parts = []
        for key, h in zip(keys, hours, strict=True):
            part = kept.get(key)
            if part is None:
                part = read_scores_for_hour(
                    store,
                    key,
                    h,
                    h + pd.Timedelta("1h"),
                    shard=shard,
                    paths=paths[key],
                    columns=SCORE_COLUMNS,
                )
                if kept is read:  # kept for the next hours (one device range only)
                    kept[key] = part
            parts.append(part)
        parts = [p for p in parts if len(p)]
        scores = (
            pd.concat(parts, ignore_index=True)
            if parts
            else load_contract("model_scores").empty_frame()
        )
        status = device_status(devices, scores, open_alerts, as_of, settings)
        del scores
        if len(status) or not frames:
            frames.append(status)
    nonempty = [f for f in frames if len(f)]
    return pd.concat(nonempty, ignore_index=True) if nonempty else frames[0]
