"""Glue for batch/streaming reconciliation inside ``device_alerts``: find the streaming alerts a
partition's scores can decide, gather their batch windows, record each decision."""

import pandas as pd

from refrig_assets.alerts.hourly import hourly_score_paths
from refrig_assets.alerts.reconciliation import (
    DETECTED,
    ReconciliationPolicy,
    reconcile_streaming,
)
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.scoring.reads import read_scores_for_hour


def reconcile_streaming_alerts(
    refrig: RefrigResource, partition_key: str, start: pd.Timestamp, end: pd.Timestamp
) -> dict[str, int]:
    """Confirm or soften the streaming alerts whose matching windows reach into [start, end).

    Only the alerted devices' scores of the hourly detectors (those the hour's alerts read) are
    read: of the hour, and of earlier hours when an alert's window began before ``start``.
    Returns how many alerts became ANOMALY_SUSTAINED and ANOMALY_RESOLVED.
    """
    policy = ReconciliationPolicy.from_contract()
    candidates = refrig.alerts.overlapping(
        (start - policy.confirm).to_pydatetime(),
        end.to_pydatetime(),
        source="streaming",
        alert_type=DETECTED,
    )
    if candidates.empty:
        return {}
    devices = set(candidates["device_id"].astype(str))
    hour_scores = read_scores_for_hour(
        refrig.store,
        partition_key,
        start,
        end,
        device_ids=devices,
        paths=hourly_score_paths(refrig.store, partition_key),
    )
    frames = [hour_scores]
    for hour in pd.date_range(candidates["window_start"].min().floor("h"), start, freq="h"):
        if hour < start:
            key = hour.strftime("%Y-%m-%d-%H:%M")
            frames.append(
                read_scores_for_hour(
                    refrig.store,
                    key,
                    hour,
                    hour + pd.Timedelta("1h"),
                    device_ids=devices,
                    paths=hourly_score_paths(refrig.store, key),
                )
            )
    frames = [f for f in frames if len(f)]
    scores = pd.concat(frames, ignore_index=True) if frames else hour_scores
    decisions = reconcile_streaming(candidates, scores, scored_until=end, policy=policy)
    for d in decisions.itertuples(index=False):
        refrig.alerts.set_alert_type(d.alert_id, d.alert_type, note=d.note)
    return decisions["alert_type"].value_counts().to_dict()
