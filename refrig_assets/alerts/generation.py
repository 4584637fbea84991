"""Alert generation: model agreement per device and window → operator-ready alerts."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from refrig_assets.alerts.severity import classify_severity, mark_suppressed, sla_deadline
from refrig_assets.contracts import load_contract


def alert_id(device_id: str, window_start: pd.Timestamp, source: str) -> str:
    """Deterministic id: re-running a partition produces the same ids (no duplicates)."""
    raw = f"{device_id}|{pd.Timestamp(window_start).isoformat()}|{source}"
    return hashlib.sha1(raw.encode()).hexdigest()[:20]


def generate_alerts(
    scores: pd.DataFrame,
    registry: pd.DataFrame,
    previous_alerts: pd.DataFrame,
    feature_partition: str,
    run_id: str,
) -> pd.DataFrame:
    """Batch alerts for one partition from every model's scores (model_scores contract).

    One alert per device and window where at least one model flags. Severity follows model
    agreement; the top contributors and explanation come from the highest-scoring flagging model;
    provenance names every flagging model and version.
    """
    contract = load_contract("device_alerts")
    flagged = scores[scores["anomaly_flag"].astype(bool)]
    if flagged.empty:
        return contract.empty_frame()
    flagged = flagged.sort_values(
        ["device_id", "window_start", "anomaly_score", "model_id"],
        ascending=[True, True, False, True],
    )
    flagged = flagged.assign(
        provenance=flagged["model_id"] + "@" + flagged["model_version"].astype(str),
        evidence=flagged["model_id"] + ": " + flagged["contributor_detail"],
    )
    grouped = flagged.groupby(["device_id", "window_start"], sort=False)
    alerts = grouped.agg(
        window_end=("window_end", "first"),
        max_score=("anomaly_score", "max"),
        models_flagging=("model_id", "nunique"),
        top_contributors=("top_contributors", "first"),
        model_versions=("provenance", lambda s: ",".join(sorted(set(s)))),
        explanation=("evidence", lambda s: "; ".join(s)),
    ).reset_index()
    reg = registry.set_index("device_id")
    alerts["site_id"] = alerts["device_id"].map(reg["site_id"]).fillna("unknown")
    alerts["cohort"] = alerts["device_id"].map(reg["cohort"]).fillna("unknown")
    alerts["source"] = "batch"
    alerts["alert_type"] = "ANOMALY_DETECTED"
    alerts["severity"] = classify_severity(alerts["max_score"], alerts["models_flagging"])
    alerts["explanation"] = (
        alerts["models_flagging"].astype(str)
        + " model(s) flag this window (max score "
        + alerts["max_score"].round(2).astype(str)
        + "). "
        + alerts["explanation"]
    )
    # The data time, not the wall clock, so a re-run produces identical alerts.
    alerts["alert_created_at"] = alerts["window_end"]
    alerts["sla_deadline"] = sla_deadline(alerts["alert_created_at"], alerts["severity"])
    alerts["escalation_level"] = contract.settings["escalation_levels"][0]
    alerts["suppressed"] = mark_suppressed(alerts, previous_alerts)
    alerts["feature_partition"] = feature_partition
    alerts["run_id"] = run_id
    alerts["alert_id"] = [
        alert_id(d, w, "batch")
        for d, w in zip(alerts["device_id"], alerts["window_start"], strict=True)
    ]
    alerts["models_flagging"] = alerts["models_flagging"].astype(np.int64)
    return alerts[contract.column_names].reset_index(drop=True)
