"""Small hand-made alerts, diagnoses and feature windows for the incident tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from refrig_assets.alerts.generation import alert_id
from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents.cause_table import CauseTable

T0 = pd.Timestamp("2026-01-05T00:00:00Z")
WINDOW = pd.Timedelta(minutes=15)

CAUSES = CauseTable(
    kinds={
        "refrigerant_leak": "refrigeration",
        "condenser_fouling": "refrigeration",
        "total_cooling_loss": "refrigeration",
        "compressor_overload": "refrigeration",
        "door_ajar": "operational",
        "sensor_fault": "sensor",
        "power_loss": "site",
        "communications_loss": "site",
    },
    severities={
        "refrigerant_leak": "HIGH",
        "condenser_fouling": "MEDIUM",
        "total_cooling_loss": "CRITICAL",
        "compressor_overload": "CRITICAL",
        "door_ajar": "MEDIUM",
        "sensor_fault": "LOW",
        "power_loss": "CRITICAL",
        "communications_loss": "LOW",
    },
    rules={
        "compressor_overload": "compressor_overload",
        "total_cooling_loss": "total_cooling_loss",
        "acute_pressure_loss": "refrigerant_leak",
        "door_ajar": "door_ajar",
        "power_loss": "power_loss",
    },
)


def window(i: int, t0: pd.Timestamp = T0) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The i-th 15-minute window after ``t0``."""
    return t0 + i * WINDOW, t0 + (i + 1) * WINDOW


def alert(
    device: str,
    i: int,
    *,
    severity: str = "CRITICAL",
    source: str = "batch",
    rule: str = "",
    site: str = "S1",
    score: float = 0.99,
    models: int = 1,
    minutes: float | None = None,
    t0: pd.Timestamp = T0,
) -> dict[str, Any]:
    """One device_alerts row for window ``i`` (a streaming one: a short span ending in it)."""
    start, end = window(i, t0)
    if source == "streaming":
        start = end - pd.Timedelta(minutes=minutes or 3)
    row: dict[str, Any] = {c: None for c in load_contract("device_alerts").column_names}
    row.update(
        alert_id=alert_id(device, start, source if not rule else f"{source}/{rule}"),
        device_id=device,
        site_id=site,
        cohort="walk_in",
        window_start=start,
        window_end=end,
        source=source,
        alert_type="ANOMALY_DETECTED",
        severity=severity,
        max_score=score,
        models_flagging=models,
        top_contributors="pressure_low_side",
        explanation=f"{rule}: fired" if rule else "pressure_low_side 5σ below",
        model_versions="m@1",
        alert_created_at=end,
        sla_deadline=end + pd.Timedelta(minutes=30),
        escalation_level="L1",
        suppressed=False,
        feature_partition=start.strftime("%Y-%m-%d-%H:00"),
        run_id="r",
    )
    return row


def alerts(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """device_alerts frame of ``rows``."""
    frame = pd.DataFrame(list(rows), columns=load_contract("device_alerts").column_names)
    for c in ("window_start", "window_end", "alert_created_at", "sla_deadline"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


def diagnosis(
    device: str,
    i: int,
    cause: str,
    *,
    confidence: float = 0.8,
    standalone: bool = False,
    base: str | None = None,
) -> dict[str, Any]:
    """One row of diagnose()'s output."""
    start, end = window(i)
    return {
        "device_id": device,
        "window_start": start,
        "window_end": end,
        "cause": cause,
        "cause_kind": CAUSES.kind(cause) or "unknown",
        "confidence": confidence if cause != "unknown" else 0.0,
        "base_severity": base or CAUSES.severity(cause) or "MEDIUM",
        "standalone": standalone,
        "evidence": json.dumps([{"feature": "x", "value": 1.0}]),
    }


def diagnoses(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """A diagnoses frame of ``rows``."""
    cols = [
        "device_id",
        "window_start",
        "window_end",
        "cause",
        "cause_kind",
        "confidence",
        "base_severity",
        "standalone",
        "evidence",
    ]
    return pd.DataFrame(list(rows), columns=cols)


def feature_window(
    device: str,
    i: int,
    *,
    flags: str = "",
    completeness: float = 1.0,
    duty: float = 0.5,
    current: float = 8.0,
    evaporator: float = -18.0,
    readings: int = 15,
) -> dict[str, Any]:
    """One device_features-like quality/activity row."""
    from refrig_assets.core.contracts import quality_flag_names

    names = quality_flag_names()
    mask = 0
    for f in filter(None, flags.split(",")):
        mask |= 1 << names.index(f)
    start, end = window(i)
    return {
        "device_id": device,
        "window_start": start,
        "window_end": end,
        "reading_count": readings,
        "sensor_completeness": completeness,
        "duty_cycle": duty,
        "current_compressor_mean": current,
        "temperature_evaporator_mean": evaporator,
        "quality_mask": mask,
        "quality_flags": flags,
    }


def registry(sites: dict[str, list[str]]) -> pd.DataFrame:
    """A registry of devices per site."""
    rows = [
        {"device_id": d, "site_id": s, "cohort": "walk_in"}
        for s, devs in sites.items()
        for d in devs
    ]
    return pd.DataFrame(rows)
