"""Streaming firings as rows of the device_alerts contract, with an operator-readable reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.alerts.generation import alert_id
from refrig_assets.alerts.severity import alert_policy, mark_suppressed, sla_deadline
from refrig_assets.core.contracts import load_contract
from refrig_assets.streaming.config import StreamingSettings

SOURCE = "streaming"
# A rule firing is not a model score; it is reported as certain, and reconciliation always
# looks at the batch models' own scores, never at this value.
RULE_SCORE = 1.0
# Contract units as an operator reads them.
UNIT_WORDS = {"degC": "°C", "degC/min": "°C/min"}


def explain(firing: pd.Series | dict, settings: StreamingSettings) -> str:
    """One sentence naming the rule, the sensor, the value and the limit it crossed."""
    rule = settings.rule(firing["rule"])
    sensor = rule.sensor
    unit = UNIT_WORDS.get(settings.units.get(sensor, ""), settings.units.get(sensor, ""))
    value, ref, limit = firing["observed"], firing["reference"], firing["threshold"]
    state = "running" if firing["running"] == 1 else "off"
    if rule.kind == "above":
        text = f"{sensor} {value:.1f} {unit}, above this device's limit of {limit:g} {unit}"
    elif rule.kind == "above_moving_average":
        hours = rule.minutes("average_hours")
        text = (
            f"{sensor} {value:.1f} {unit}, {value / ref:.1f}× this device's {hours:g} h average "
            f"with the compressor {state} ({ref:.2f} {unit}; limit {limit:g}×)"
        )
    elif rule.kind == "drop_within":
        window = rule.minutes("window_minutes")
        text = (
            f"{sensor} fell {(ref - value) / ref:.0%} ({ref:.0f} → {value:.0f} {unit}) within "
            f"{window:g} min with the compressor {state} throughout (limit {limit:.0%})"
        )
    elif rule.kind == "state_held":
        text = (
            f"{sensor} on for {value:.0f} min without a break (this device's limit {limit:g} min)"
        )
    elif rule.kind == "below_moving_average_held":
        sustain = rule.minutes("sustain_minutes")
        text = (
            f"{sensor} {value:.2f} {unit} for {firing['span_minutes']:.0f} min, below "
            f"{limit:g}× this device's idle average ({ref:.2f} {unit}): no supply"
        )
    else:
        sustain = rule.minutes("sustain_minutes")
        text = (
            f"{sensor} rising {value:.1f} {unit}/min for {firing['span_minutes']:.0f} min "
            f"(limit {limit:g} {unit}/min sustained {sustain:g} min)"
        )
    return f"{rule.name}: {text}"


def firings_to_alerts(
    firings: pd.DataFrame,
    registry: pd.DataFrame | None,
    settings: StreamingSettings,
    run_id: str,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One CRITICAL (``streaming.severity``) alert per episode-opening firing.

    ``alert_id`` is derived from device, rule and the firing time, so evaluating the same
    readings again yields the same ids. ``previous`` (recent alerts, as
    ``AlertStore.recent_alerts`` returns them) suppresses a repeat of the same device and sensor
    within the dedup window; only earlier streaming alerts count, since a batch alert about the
    same sensor must not silence an acute one.
    """
    contract = load_contract("device_alerts")
    if firings.empty:
        return contract.empty_frame()
    f = firings.reset_index(drop=True)
    ts = pd.to_datetime(f["ts"], utc=True)
    reg = registry if registry is not None else pd.DataFrame(columns=["device_id"])
    # Index only the registry rows of these devices (a fleet's registry has 100K rows).
    reg = reg[reg["device_id"].isin(set(f["device_id"]))].set_index("device_id")
    alerts = pd.DataFrame(
        {
            "alert_id": [
                alert_id(d, t, f"{SOURCE}/{r}")
                for d, t, r in zip(f["device_id"], ts, f["rule"], strict=True)
            ],
            "device_id": f["device_id"].astype(str),
            "site_id": f["device_id"].map(reg["site_id"]) if "site_id" in reg else np.nan,
            "cohort": f["device_id"].map(reg["cohort"]) if "cohort" in reg else np.nan,
            "window_start": ts - pd.to_timedelta(f["span_minutes"].astype(float), unit="min"),
            "window_end": ts,
            "source": SOURCE,
            "alert_type": "ANOMALY_DETECTED",
            "severity": settings.severity,
            "max_score": RULE_SCORE,
            "models_flagging": np.int64(0),
            "top_contributors": f["sensor"].astype(str),
            "explanation": [explain(row, settings) for row in f.to_dict("records")],
            "model_versions": f"streaming_rules@{settings.version}",
            "alert_created_at": ts,
        }
    )
    alerts["site_id"] = alerts["site_id"].fillna("unknown").astype(str)
    alerts["cohort"] = alerts["cohort"].fillna("unknown").astype(str)
    alerts["sla_deadline"] = sla_deadline(alerts["alert_created_at"], alerts["severity"])
    alerts["escalation_level"] = alert_policy().escalation_levels[0]
    prior = _earlier_streaming(previous, alerts["alert_created_at"].min())
    alerts["suppressed"] = mark_suppressed(alerts, prior).astype(bool)
    alerts["feature_partition"] = ts.dt.strftime("%Y-%m-%d-%H:00")
    alerts["run_id"] = run_id
    alerts["models_flagging"] = alerts["models_flagging"].astype(np.int64)
    return alerts[contract.column_names]


def _earlier_streaming(previous: pd.DataFrame | None, before: pd.Timestamp) -> pd.DataFrame:
    columns = ["device_id", "top_contributors", "alert_created_at", "suppressed"]
    if previous is None or previous.empty:
        return pd.DataFrame(columns=columns)
    keep = (previous["source"] == SOURCE) & (previous["alert_created_at"] < before)
    return previous.loc[keep, columns]
