"""One hour of the incident step: what the ``device_incidents`` asset does, without Dagster.

The hour's batch alerts (``device_alerts`` Parquet) and the streaming alerts stored for it, the
probable cause of every feature window (:func:`refrig_assets.incidents.causes.diagnose_partition`),
the windows' quality and activity (``device_features``, also of the hours the sensor-ticket
persistence reaches back to) and the registry go through :func:`build_incidents` together with
the stored incidents still open (or closed recently enough to reopen); the result is written to
the alert database (:meth:`IncidentStore.apply`) and the touched incidents, as stored, are the
partition's ``device_incidents`` rows.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.core.fleet_sensors import fleet_sensor_columns
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import WHOLE_FLEET, DeviceRange
from refrig_assets.incidents.build import (
    DEVICE_TRACK,
    DROPOUT_FLAG,
    EVIDENCE_COLUMNS,
    UNKNOWN,
    IncidentBuild,
    build_incidents,
    never_reported_message,
)
from refrig_assets.incidents.never_reported import never_reported_sensors, without_never_reported
from refrig_assets.incidents.policy import IncidentPolicy, incident_policy
from refrig_assets.incidents.quality_signals import flag_bits, quality_signals, silent_windows
from refrig_assets.incidents.repository import IncidentStore
from refrig_assets.incidents.site_signals import site_signals

_log = logging.getLogger(__name__)


# device_features columns the incident step reads besides the keys (any may be missing).
def quality_columns(policy: IncidentPolicy) -> list[str]:
    """The device_features columns sensor tickets, site events and the excursion need."""
    wanted = [
        "device_id",
        "window_start",
        "window_end",
        "reading_count",
        "sensor_completeness",
        "duty_cycle",
        "quality_mask",
        f"{policy.site_events.current_sensor}_mean",
        policy.site_events.off_streak_feature,
        policy.site_events.idle_draw_feature,
        policy.severity.evaporator_feature,
        policy.severity.defrost_feature,
    ]
    known = set(load_contract("device_features").column_names)
    return [c for c in wanted if c in known]


@dataclass
class HourResult:
    """What one hour of the incident step did."""

    incidents: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    alerts_seen: int = 0
    alerts_unlinked: list[str] = field(default_factory=list)
    windows_diagnosed: int = 0
    # Contract sensors no device reported in the windows seen (see build_incidents).
    never_reported: list[str] = field(default_factory=list)


def partition_key_of(hour: pd.Timestamp) -> str:
    """The hourly partition key of ``hour``."""
    return hour.strftime("%Y-%m-%d-%H:%M")


def with_dropout_sensors(
    store: ParquetStore, quality: pd.DataFrame | None, keys: list[str]
) -> pd.DataFrame | None:
    """``quality`` with the fleet's ``<sensor>_mean`` columns (from the device_features
    partitions ``keys``) for the devices with a SENSOR_DROPOUT window, so their ticket names
    the silent sensor. Read for those devices only: most hours have none."""
    if quality is None or quality.empty or "quality_mask" not in quality:
        return quality
    bit = 1 << quality_flag_names().index(DROPOUT_FLAG)
    mask = quality["quality_mask"].fillna(0).astype("int64").to_numpy()
    devices = sorted(set(quality.loc[(mask & bit) != 0, "device_id"].astype(str)))
    if not devices:
        return quality
    known = set(load_contract("device_features").column_names)
    sensors = fleet_sensor_columns(load_contract("sensor_readings"))
    # Columns the frame already holds (the current and evaporator means) are not read again.
    means = [
        f"{c.name}_mean"
        for c in sensors
        if f"{c.name}_mean" in known and f"{c.name}_mean" not in quality
    ]
    if not means:
        return quality
    extra = store.read_many(
        "device_features",
        keys,
        columns=["device_id", "window_start", *means],
        filters=[("device_id", "in", devices)],
    )
    if extra.empty:
        return quality
    extra["window_start"] = extra["window_start"].astype(quality["window_start"].dtype)
    return _with_columns_of(quality, extra, devices)


def _with_columns_of(
    quality: pd.DataFrame, extra: pd.DataFrame, devices: list[str]
) -> pd.DataFrame:
    """``quality.merge(extra, on=[device_id, window_start], how="left")`` where only the rows
    of ``devices`` can match: those rows are merged and the others get missing values, without
    copying the whole hour's frame (a million devices' windows) the way the merge does."""
    keys = ["device_id", "window_start"]
    index = quality.index
    plain = (
        quality["device_id"].dtype == object
        and isinstance(index, pd.RangeIndex)
        and index.start == 0
        and index.step == 1
        and not extra.duplicated(keys).any()
        and all(extra[c].dtype.kind == "f" for c in extra.columns if c not in keys)
    )
    if not plain:
        return quality.merge(extra, on=keys, how="left")
    rows = np.flatnonzero(quality["device_id"].isin(devices).to_numpy())
    part = quality[keys].iloc[rows].merge(extra, on=keys, how="left")
    added = {}
    for column in (c for c in extra.columns if c not in keys):
        values = np.full(len(quality), np.nan, dtype=extra[column].dtype)
        values[rows] = part[column].to_numpy()
        added[column] = values
    return pd.concat([quality, pd.DataFrame(added, index=index)], axis=1, copy=False)


def _read(
    store: ParquetStore, dataset: str, key: str | None, columns: list[str] | None = None
) -> pd.DataFrame | None:
    """A partition, or None where it is not stored; of ``columns`` those the file holds (a
    partition written before a column joined the contract lacks it)."""
    path = store.path(dataset, key)
    if not path.exists():
        return None
    if columns is not None:
        names = set(pq.ParquetFile(path).schema.names)
        columns = [c for c in columns if c in names]
    return store.read(dataset, key, columns=columns)


def used_diagnoses(
    diagnoses: pd.DataFrame, alerted: set[str], warm_cause: str | None = None
) -> pd.DataFrame:
    """The diagnoses :func:`build_incidents` uses: every window of an alerted device (an
    alert's probable cause), the standalone causes (incidents without an alert) and the
    windows named ``warm_cause`` (a warm room: the site's share of them is its context)."""
    keep = diagnoses["device_id"].astype(str).isin(alerted).to_numpy()
    keep |= (diagnoses["standalone"].astype(bool) & diagnoses["cause"].ne(UNKNOWN)).to_numpy()
    if warm_cause is not None:
        keep |= diagnoses["cause"].eq(warm_cause).to_numpy()
    return diagnoses[keep]


def rule_named_devices(incidents: pd.DataFrame | None) -> set[str]:
    """Devices of stored device incidents whose cause a streaming rule alone named (a known
    cause without diagnosis evidence)."""
    if incidents is None or incidents.empty or "track" not in incidents:
        return set()
    named = (
        incidents["track"].eq(DEVICE_TRACK)
        & incidents["cause"].ne(UNKNOWN)
        & incidents["cause_evidence"].astype(str).eq("[]")
    )
    return set(incidents.loc[named, "device_id"].dropna().astype(str))


def hour_alerts(
    store: ParquetStore, incidents: IncidentStore, key: str, start, end
) -> pd.DataFrame:
    """The hour's batch alerts (Parquet) and the streaming/fallback alerts stored for it."""
    batch = _read(store, "device_alerts", key)
    stored = incidents.alerts.overlapping(start.to_pydatetime(), end.to_pydatetime())
    stored = stored[stored["source"].ne("batch")] if len(stored) else stored
    frames = [f for f in (batch, stored) if f is not None and len(f)]
    if not frames:
        return load_contract("device_alerts").empty_frame()
    names = load_contract("device_alerts").column_names
    out = pd.concat([f[names] for f in frames], ignore_index=True)
    return out.drop_duplicates("alert_id", keep="first").reset_index(drop=True)


def quiet_hour(
    alerts: pd.DataFrame,
    diagnoses: pd.DataFrame | None,
    quality: pd.DataFrame | None,
    devices: pd.DataFrame | None,
    prior: pd.DataFrame | None,
    policy: IncidentPolicy,
) -> list[str] | None:
    """The contract sensors no device reported in ``quality`` (the build's ``never_reported``)
    when the hour gives :func:`build_incidents` nothing to group, else None.

    Nothing to group: no alert of the hour, no stored incident open or closed within the
    build's reach (``prior``), no diagnosis the build uses (with neither of those,
    :func:`used_diagnoses` keeps only standalone and warm-room causes), and no sensor-health or
    site signal in the quality windows. The build would then return no incident, and storing it
    would write nothing, so the caller skips both (most hours of a history backfill). The
    signals are those the build computes, by the same functions, from the same frames; the
    cheap conditions are tested first, so an hour with an alert pays nothing. A new kind of
    signal in the build must be a condition here too (test_quiet_hour pairs the two)."""
    if len(alerts) or (prior is not None and len(prior)):
        return None
    if diagnoses is not None and len(diagnoses):
        return None
    never = never_reported_sensors(quality, policy)
    if never and quality is not None:
        quality = without_never_reported(quality, never)
    if quality is not None and len(quality):
        # A flagged or silent window is a signal (mostly): said without building the signals.
        if silent_windows(quality, policy).any():
            return None
        if any(bits.any() for bits in flag_bits(quality, policy.sensor_tickets.flags).values()):
            return None
    # No incident is open, so no device is silent since before these windows.
    if len(quality_signals(quality, devices, policy, {}, frozenset(never))):
        return None
    if len(site_signals(quality, devices, policy)):
        return None
    return never


@functools.cache
def _nothing_built() -> IncidentBuild:
    """What the build returns when it has nothing to group, typed once: a quiet hour only
    reads it (the store writes nothing for it)."""
    return IncidentBuild(
        load_contract("device_incidents").empty_frame(), pd.DataFrame(columns=EVIDENCE_COLUMNS)
    )


def run_hour(
    store: ParquetStore,
    incidents: IncidentStore,
    partition_key: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    diagnose: Callable[[pd.DataFrame], pd.DataFrame] | None,
    *,
    now: datetime | None = None,
    policy: IncidentPolicy | None = None,
    shards: list[DeviceRange] | None = None,
    warn_never_reported: bool = True,
) -> HourResult:
    """Build, store and return the incidents of one hour (see the module docstring).

    ``diagnose`` maps device_features rows to the probable cause of each window (the asset
    passes a :class:`~refrig_assets.incidents.causes.HourDiagnosis`, whose ``finish`` is called
    after the last shard); None leaves every cause unknown. The hour's features are read and
    diagnosed one device range of ``shards`` at a time: of each shard's diagnoses only what the
    grouping uses is kept (the windows of alerted devices and the standalone causes), so the
    result is the same for any shard count. ``warn_never_reported``: passed to
    :func:`build_incidents` (False when the caller logs ``never_reported`` itself)."""
    policy = policy or incident_policy()
    columns = quality_columns(policy)
    quality_frames = []
    back = math.ceil(policy.sensor_tickets.look_back / pd.Timedelta(hours=1))
    for h in range(back, 0, -1):
        earlier = _read(
            store, "device_features", partition_key_of(start - pd.Timedelta(hours=h)), columns
        )
        if earlier is not None and len(earlier):
            quality_frames.append(earlier)
    current = _read(store, "device_features", partition_key, columns)
    present = current is not None
    if current is not None and len(current):
        quality_frames.append(current)
    quality = pd.concat(quality_frames, ignore_index=True) if quality_frames else None
    keys = [partition_key_of(start - pd.Timedelta(hours=h)) for h in range(back, -1, -1)]
    quality = with_dropout_sensors(store, quality, keys)
    alerts = hour_alerts(store, incidents, partition_key, start, end)
    reach = policy.reopen + policy.hysteresis + policy.sensor_tickets.look_back
    prior = incidents.open_incidents(closed_since=(start - reach).to_pydatetime())
    diagnoses, diagnosed = None, 0
    if diagnose is not None and present:
        # A streaming rule's incident takes its device's diagnosis (cause_choice.yield_rule_causes).
        alerted = set(alerts["device_id"].astype(str)) | rule_named_devices(prior)
        kept = []
        # Only the columns the diagnosis reads (a diagnose without ``columns`` reads them all).
        wanted = getattr(diagnose, "columns", None)
        path = store.path("device_features", partition_key)
        read = wanted(pq.ParquetFile(path).schema_arrow.names) if wanted else None
        for shard in shards or WHOLE_FLEET:
            features = store.read_many(
                "device_features", [partition_key], columns=read, filters=shard.read_filters()
            )
            if not len(features):
                continue
            found = diagnose(features)
            del features
            diagnosed += len(found)
            kept.append(used_diagnoses(found, alerted, policy.site_ambient.cause))
        finish = getattr(diagnose, "finish", None)
        if finish is not None:
            finish()
        if kept:
            diagnoses = pd.concat(kept, ignore_index=True).sort_values(
                ["device_id", "window_start"], kind="stable", ignore_index=True
            )
    registry = _read(store, "device_registry", None)
    never = quiet_hour(alerts, diagnoses, quality, registry, prior, policy)
    if never is not None:
        if never:
            _log.log(
                logging.WARNING if warn_never_reported else logging.DEBUG,
                "%s",
                never_reported_message(never),
            )
        build = replace(_nothing_built(), never_reported=never)
    else:
        build = build_incidents(
            alerts,
            diagnoses,
            quality=quality,
            devices=registry,
            policy=policy,
            open_incidents=prior,
            as_of=end,
            warn_never_reported=warn_never_reported,
        )
    counts = incidents.apply(build, now=now)
    touched = build.incidents["incident_id"].tolist()
    # Nothing touched or alerted: no read of the store (most hours of a small fleet).
    stored = incidents.by_ids(touched) if touched else None
    if stored is not None:
        # A rerun of an old hour sees incidents that began after it among the live ones it may
        # extend; they are not the hour's (its first run could not list them).
        stored = stored[stored["first_window_start"] < end]
    linked = incidents.linked_alerts(alerts["alert_id"].tolist()) if len(alerts) else set()
    unlinked = sorted(set(alerts["alert_id"]) - linked)
    contract = load_contract("device_incidents")
    return HourResult(
        incidents=stored[contract.column_names]
        if stored is not None and len(stored)
        else contract.empty_frame(),
        counts=counts,
        alerts_seen=len(alerts),
        alerts_unlinked=unlinked,
        windows_diagnosed=diagnosed,
        never_reported=list(build.never_reported),
    )


def summary(result: HourResult, policy: IncidentPolicy | None = None) -> dict[str, Any]:
    """Figures for the asset's metadata: counts by severity, kind and cause, live incidents,
    and the contract sensors no device reported (comma separated, empty when none)."""
    policy = policy or incident_policy()
    inc = result.incidents
    live = inc[inc["status"].isin(["OPEN", "ACKNOWLEDGED"]) & inc["closed_at"].isna()]
    device = inc[inc["scope"].eq("device") & inc["kind"].ne("sensor")]
    critical_share = float((device["severity"] == "CRITICAL").mean()) if len(device) else 0.0
    return {
        "incidents": len(inc),
        "live": len(live),
        "by_severity": {s: int((inc["severity"] == s).sum()) for s in policy.severities},
        "by_kind": inc["kind"].value_counts().to_dict(),
        "by_cause": inc["cause"].value_counts().to_dict(),
        "site_incidents": int(inc["scope"].eq("site").sum()),
        "inhibited": int(inc["inhibited"].sum()),
        "sensor_tickets": int(inc["kind"].eq("sensor").sum()),
        "critical_share_of_faults": round(critical_share, 3),
        "alerts_seen": result.alerts_seen,
        "alerts_unlinked": len(result.alerts_unlinked),
        "windows_diagnosed": result.windows_diagnosed,
        "sensors_never_reported": ", ".join(result.never_reported),
        **{k: int(v) for k, v in result.counts.items()},
    }
