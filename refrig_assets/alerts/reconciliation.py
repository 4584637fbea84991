"""Batch/streaming reconciliation: the batch models confirm or soften a streaming alert.

A streaming alert is matched with the device's batch windows that overlap its own window or
start within ``confirm_minutes`` after it (the event and what followed it: with the default of
one window length, the window of the event and the next one). The highest score of any
model over those windows decides (``reconciliation`` in config/alerts.yaml):

* above ``sustained_above`` → ``ANOMALY_SUSTAINED``: the anomaly is real and ongoing;
* below ``resolved_below`` once every matching window has been scored → ``ANOMALY_RESOLVED``:
  the event was transient;
* otherwise (in between, not scored yet, or the device not scorable) the alert stays
  ``ANOMALY_DETECTED`` and a later batch run looks again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from refrig_assets.alerts.severity import alert_policy

SUSTAINED = "ANOMALY_SUSTAINED"
RESOLVED = "ANOMALY_RESOLVED"
DETECTED = "ANOMALY_DETECTED"
DECISION_COLUMNS = ["alert_id", "alert_type", "batch_max_score", "windows", "note"]


@dataclass(frozen=True)
class ReconciliationPolicy:
    """Thresholds on the batch score and how long after the event the batch windows count."""

    sustained_above: float
    resolved_below: float
    confirm: pd.Timedelta

    @classmethod
    def from_contract(cls) -> ReconciliationPolicy:
        """The ``reconciliation`` block of config/alerts.yaml."""
        raw = alert_policy().reconciliation
        return cls(
            raw.number("sustained_above", minimum=0.0, maximum=1.0),
            raw.number("resolved_below", minimum=0.0, maximum=1.0),
            pd.Timedelta(minutes=raw.number("confirm_minutes", minimum=0.0)),
        )


def matching_span(alerts: pd.DataFrame, policy: ReconciliationPolicy) -> pd.DataFrame:
    """Each alert's span of interest: from window_start to window_end + confirm (a batch window
    matches when it overlaps the alert's window or starts by the end of the span)."""
    return pd.DataFrame(
        {
            "alert_id": alerts["alert_id"],
            "device_id": alerts["device_id"],
            "span_start": pd.to_datetime(alerts["window_start"], utc=True),
            "span_end": pd.to_datetime(alerts["window_end"], utc=True) + policy.confirm,
        }
    )


def reconcile_streaming(
    alerts: pd.DataFrame,
    scores: pd.DataFrame,
    scored_until: pd.Timestamp,
    policy: ReconciliationPolicy | None = None,
) -> pd.DataFrame:
    """Decisions for streaming alerts still ``ANOMALY_DETECTED``, from batch ``scores``
    (model_scores rows of any model) covering windows up to ``scored_until``.

    Returns one row per decided alert: alert_id, alert_type (SUSTAINED or RESOLVED),
    batch_max_score, windows (how many batch windows matched) and a note for the audit trail.
    """
    policy = policy or ReconciliationPolicy.from_contract()
    open_ = alerts[(alerts["source"] == "streaming") & (alerts["alert_type"] == DETECTED)]
    if open_.empty or scores.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    spans = matching_span(open_, policy)
    s = scores[["device_id", "window_start", "window_end", "anomaly_score"]].copy()
    s["window_start"] = pd.to_datetime(s["window_start"], utc=True)
    s["window_end"] = pd.to_datetime(s["window_end"], utc=True)
    pairs = spans.merge(s, on="device_id")
    pairs = pairs[
        (pairs["window_start"] <= pairs["span_end"]) & (pairs["window_end"] > pairs["span_start"])
    ]
    if pairs.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    matched = pairs.groupby("alert_id").agg(
        batch_max_score=("anomaly_score", "max"),
        windows=("window_start", "nunique"),
        span_end=("span_end", "first"),
    )
    # The window starting at span_end belongs to a later partition than one ending there.
    complete = matched["span_end"] < pd.Timestamp(scored_until)
    sustained = matched["batch_max_score"] > policy.sustained_above
    resolved = ~sustained & complete & (matched["batch_max_score"] < policy.resolved_below)
    matched["alert_type"] = None
    matched.loc[sustained, "alert_type"] = SUSTAINED
    matched.loc[resolved, "alert_type"] = RESOLVED
    decided = matched[matched["alert_type"].notna()].reset_index()
    decided["note"] = [
        (
            f"batch max score {score:.2f} > {policy.sustained_above:g} over {n} window(s): "
            "anomaly confirmed and ongoing"
            if kind == SUSTAINED
            else f"batch max score {score:.2f} < {policy.resolved_below:g} over {n} window(s): "
            "transient event"
        )
        for score, n, kind in zip(
            decided["batch_max_score"], decided["windows"], decided["alert_type"], strict=True
        )
    ]
    decided["windows"] = decided["windows"].astype("int64")
    return decided[DECISION_COLUMNS]
