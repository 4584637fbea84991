"""Alert generation: model agreement per device and window → operator-ready alerts."""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np
import pandas as pd

from refrig_assets.alerts.severity import (
    alert_policy,
    classify_severity,
    mark_suppressed,
    sla_deadline,
)
from refrig_assets.core.contracts import load_contract

# How a feature statistic reads in an explanation ("vibration_compressor ... (running mean)").
STAT_WORDS = {
    "mean": "mean",
    "std": "variability",
    "min": "minimum",
    "max": "maximum",
    "last": "latest value",
    "slope": "trend",
}
# Other unusual sensors named after the lead evidence.
MAX_ALSO = 2


def alert_id(device_id: str, window_start: pd.Timestamp, source: str) -> str:
    """Deterministic id: re-running a partition produces the same ids (no duplicates)."""
    raw = f"{device_id}|{pd.Timestamp(window_start).isoformat()}|{source}"
    return hashlib.sha1(raw.encode()).hexdigest()[:20]


@cache
def _feature_words(feature: str) -> tuple[str, str | None]:
    """(sensor, what was measured) of a feature column; unknown names stand for themselves."""
    try:
        column = load_contract("device_features").column(feature)
    except KeyError:
        return feature, None
    sensor, stat = column.extra.get("sensor"), column.extra.get("stat")
    if not sensor:
        return feature, None
    what = STAT_WORDS.get(stat, stat)
    if column.extra.get("condition"):
        what = f"{column.extra['condition']} {what}"
    return sensor, what


def readable_evidence(detail: str) -> str:
    """A detector's ``contributor_detail`` in operator terms: the sensor instead of the feature
    column, the evidence up to its first comma, what was measured in brackets.

    ``"vibration_compressor_running_mean 4.2σ above this device's baseline, given the rest of
    the window"`` → ``"vibration_compressor 4.2σ above this device's baseline (running mean)"``.
    """
    feature, _, evidence = str(detail).strip().partition(" ")
    sensor, what = _feature_words(feature)
    evidence = evidence.split(",")[0].strip()
    text = f"{sensor} {evidence}".strip()
    return f"{text} ({what})" if what else text


def explain(lead_detail: str, model_scores: list[tuple[str, float]], top_contributors: str) -> str:
    """Operator explanation: the strongest evidence, the models that agree with their scores,
    and the next unusual sensors."""
    lead = readable_evidence(lead_detail)
    models = ", ".join(f"{m} {s:.2f}" for m, s in model_scores)
    label = "model" if len(model_scores) == 1 else "models"
    text = f"{lead}. Flagged by {len(model_scores)} {label}: {models}."
    first = lead.split(" ")[0]
    others = [c for c in str(top_contributors).split(",") if c and c != first][:MAX_ALSO]
    return f"{text} Also unusual: {', '.join(others)}." if others else text


def generate_alerts(
    scores: pd.DataFrame,
    registry: pd.DataFrame,
    previous_alerts: pd.DataFrame,
    feature_partition: str,
    run_id: str,
) -> pd.DataFrame:
    """Batch alerts for one partition from every model's scores (model_scores contract).

    One alert per device and window where at least one model flags. Severity follows model
    agreement; the top contributors and the lead evidence come from the highest-scoring flagging
    model; provenance names every flagging model and version, the feature partition and the run.
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
        model_score=list(zip(flagged["model_id"], flagged["anomaly_score"], strict=True)),
    )
    grouped = flagged.groupby(["device_id", "window_start"], sort=False)
    alerts = grouped.agg(
        window_end=("window_end", "first"),
        max_score=("anomaly_score", "max"),
        models_flagging=("model_id", "nunique"),
        top_contributors=("top_contributors", "first"),
        model_versions=("provenance", lambda s: ",".join(sorted(set(s)))),
        lead_detail=("contributor_detail", "first"),
        model_scores=("model_score", list),
    ).reset_index()
    alerts["explanation"] = [
        explain(d, m, t)
        for d, m, t in zip(
            alerts["lead_detail"], alerts["model_scores"], alerts["top_contributors"], strict=True
        )
    ]
    reg = registry.set_index("device_id")
    alerts["site_id"] = alerts["device_id"].map(reg["site_id"]).fillna("unknown")
    alerts["cohort"] = alerts["device_id"].map(reg["cohort"]).fillna("unknown")
    alerts["source"] = "batch"
    alerts["alert_type"] = "ANOMALY_DETECTED"
    alerts["severity"] = classify_severity(alerts["max_score"], alerts["models_flagging"])
    # The data time, not the wall clock, so a re-run produces identical alerts.
    alerts["alert_created_at"] = alerts["window_end"]
    alerts["sla_deadline"] = sla_deadline(alerts["alert_created_at"], alerts["severity"])
    alerts["escalation_level"] = alert_policy().escalation_levels[0]
    alerts["suppressed"] = mark_suppressed(alerts, previous_alerts)
    alerts["feature_partition"] = feature_partition
    alerts["run_id"] = run_id
    alerts["alert_id"] = [
        alert_id(d, w, "batch")
        for d, w in zip(alerts["device_id"], alerts["window_start"], strict=True)
    ]
    alerts["models_flagging"] = alerts["models_flagging"].astype(np.int64)
    return alerts[contract.column_names].reset_index(drop=True)
