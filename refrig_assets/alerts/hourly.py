"""One hour of batch alerts, generated one device shard at a time.

Alert generation looks at one device at a time (model agreement per device and window, the
dedup against the device's earlier alerts), so the hour's scores are read, turned into alerts
and dropped one range of device ids at a time
(:func:`~refrig_assets.engines.device_shards.hour_shards`); only the alerts, a small share of
the windows, are kept. The result is the same for any shard count.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from refrig_assets.alerts.generation import generate_alerts
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import WHOLE_FLEET, DeviceRange
from refrig_assets.scoring.reads import read_scores_for_hour


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
    previous_alerts: pd.DataFrame,
    run_id: str,
    shards: list[DeviceRange] | None = None,
) -> HourAlerts:
    """:func:`~refrig_assets.alerts.generation.generate_alerts` over every detector's scores of
    the hour [start, end), read and alerted one device range of ``shards`` at a time."""
    frames, models = [], set()
    for shard in shards or WHOLE_FLEET:
        scores = read_scores_for_hour(store, partition_key, start, end, shard=shard)
        models.update(scores["model_id"].unique().tolist())
        previous = previous_alerts
        if len(previous):
            previous = previous[shard.mask(previous["device_id"])]
        alerts = generate_alerts(scores, registry, previous, partition_key, run_id)
        del scores
        if len(alerts):
            frames.append(alerts)
    alerts = (
        pd.concat(frames, ignore_index=True)
        if frames
        else load_contract("device_alerts").empty_frame()
    )
    return HourAlerts(alerts, sorted(models))
