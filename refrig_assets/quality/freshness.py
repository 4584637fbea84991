"""Freshness of hourly datasets: how old each partition is against its contract's SLA, and
whether it is older than the data it was computed from.

A dataset partition is ``out_of_date`` when its upstream partition was rewritten after it (for
instance clean readings refreshed by a late file while the features were not): scoring such
features would score data that no longer exists, so :func:`feature_staleness` says not to.
Times come from the partition files themselves, so this works the same for any engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore

# Hourly datasets and the dataset each is computed from (None: the landing zone).
HOURLY_LINEAGE: dict[str, str | None] = {
    "sensor_readings": None,
    "clean_readings": "sensor_readings",
    "quarantined_readings": "sensor_readings",
    "device_features": "clean_readings",
}


@dataclass(frozen=True)
class FeatureStaleness:
    """Whether a feature partition may be scored, and why not."""

    stale: bool
    reason: str | None


def updated_at(store: ParquetStore, dataset: str, partition_key: str) -> datetime | None:
    """When a partition was last written (its file's mtime), or None when it does not exist."""
    path = store.path(dataset, partition_key)
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC) if path.exists() else None


def feature_staleness(
    features_updated_at: datetime | None,
    upstream_updated_at: datetime | None,
    partition_key: str = "",
) -> FeatureStaleness:
    """Stale when the features are missing or older than the clean readings they summarise."""
    if features_updated_at is None:
        return FeatureStaleness(True, f"no device_features for {partition_key}")
    if upstream_updated_at is not None and features_updated_at < upstream_updated_at:
        return FeatureStaleness(
            True,
            f"device_features {partition_key} ({features_updated_at:%Y-%m-%d %H:%M:%S}) are "
            f"older than their clean_readings ({upstream_updated_at:%Y-%m-%d %H:%M:%S}); "
            "re-materialize device_features first",
        )
    return FeatureStaleness(False, None)


def stale_feature_partitions(store: ParquetStore, partition_keys: list[str]) -> dict[str, str]:
    """Feature partitions (of those given) older than their clean readings, with the reason.

    Missing partitions are not listed: scoring reports those itself."""
    out = {}
    for key in partition_keys:
        features = updated_at(store, "device_features", key)
        if features is None:
            continue
        verdict = feature_staleness(features, updated_at(store, "clean_readings", key), key)
        if verdict.stale:
            out[key] = verdict.reason or "stale"
    return out


def freshness_state(
    updated: datetime | None, upstream: datetime | None, now: datetime, sla_minutes: float
) -> tuple[str, str | None]:
    """(state, reason): ``missing``, ``out_of_date`` (older than its upstream), ``stale`` (not
    updated within the SLA) or ``fresh``."""
    if updated is None:
        return "missing", "never materialized"
    if upstream is not None and updated < upstream:
        return "out_of_date", "older than its upstream partition"
    if (now - updated).total_seconds() / 60 > sla_minutes:
        return "stale", f"not updated within its {sla_minutes:g}-minute SLA"
    return "fresh", None


def partition_freshness(store: ParquetStore, partition_key: str, now: datetime) -> dict:
    """Freshness of every hourly dataset of one partition against its contract's SLA."""
    out = {}
    for dataset, upstream in HOURLY_LINEAGE.items():
        sla = load_contract(dataset).freshness_sla_minutes
        updated = updated_at(store, dataset, partition_key)
        up = updated_at(store, upstream, partition_key) if upstream else None
        state, reason = freshness_state(updated, up, now, sla)
        out[dataset] = {
            "state": state,
            "reason": reason,
            "updated_at": updated.isoformat(timespec="seconds") if updated else None,
            "age_minutes": round((now - updated).total_seconds() / 60, 1) if updated else None,
            "sla_minutes": sla,
        }
    return out
