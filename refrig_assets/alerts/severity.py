"""Severity, SLA deadline and dedup: the alert policy of the device_alerts contract."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract


def alert_policy() -> dict:
    """The alert policy block of contracts/device_alerts.yaml."""
    return load_contract("device_alerts").settings


def classify_severity(max_score: np.ndarray, models_flagging: np.ndarray) -> np.ndarray:
    """Severity per alert from the ordered rules (first matching rule wins)."""
    max_score = np.asarray(max_score, dtype=float)
    models_flagging = np.asarray(models_flagging, dtype=int)
    out = np.full(max_score.shape, None, dtype=object)
    for rule in alert_policy()["severity_rules"]:
        conds = []
        if "score_above" in rule:
            conds.append(max_score > float(rule["score_above"]))
        if "min_models" in rule:
            conds.append(models_flagging >= int(rule["min_models"]))
        if not conds:
            match = np.ones(max_score.shape, dtype=bool)
        elif rule.get("any_of"):
            match = np.logical_or.reduce(conds)
        else:
            match = np.logical_and.reduce(conds)
        out = np.where((out == None) & match, rule["severity"], out)  # noqa: E711
    return out


def sla_deadline(created_at: pd.Series, severity: pd.Series) -> pd.Series:
    """created_at plus the SLA of each alert's severity."""
    minutes = severity.map(alert_policy()["sla_minutes"]).astype(float)
    return created_at + pd.to_timedelta(minutes, unit="m")


def mark_suppressed(alerts: pd.DataFrame, previous: pd.DataFrame) -> pd.Series:
    """True for alerts whose device and top contributor already alerted within the dedup window.

    The comparison is with the last *unsuppressed* alert of the same device and contributor
    (from ``previous`` or earlier in ``alerts``), so a lasting fault re-alerts once per window
    instead of being silenced forever.
    """
    window = timedelta(hours=float(alert_policy()["dedup_window_hours"]))
    first = alerts["top_contributors"].str.split(",").str[0]
    last_seen: dict[tuple[str, str], pd.Timestamp] = {}
    if len(previous):
        prev = previous[~previous["suppressed"].astype(bool)]
        for dev, contrib, at in zip(
            prev["device_id"],
            prev["top_contributors"].str.split(",").str[0],
            prev["alert_created_at"],
            strict=True,
        ):
            key = (dev, contrib)
            if key not in last_seen or at > last_seen[key]:
                last_seen[key] = at
    suppressed = np.zeros(len(alerts), dtype=bool)
    order = np.argsort(alerts["alert_created_at"].to_numpy(), kind="stable")
    devices, created = alerts["device_id"].to_numpy(), alerts["alert_created_at"].to_numpy()
    for i in order:
        key = (devices[i], first.iat[i])
        at = pd.Timestamp(created[i])
        at = at.tz_localize("UTC") if at.tzinfo is None else at
        seen = last_seen.get(key)
        if seen is not None and seen <= at < seen + window:
            suppressed[i] = True
        else:
            last_seen[key] = at
    return pd.Series(suppressed, index=alerts.index)
