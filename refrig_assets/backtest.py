"""Detection quality against labelled faults: recall, delay, precision, false alerts.

An incident (a labelled fault of one device) is caught when an unsuppressed-or-suppressed alert
for that device falls in [onset, end + grace]. An alert is true when it falls inside some
labelled incident of its device (plus grace); otherwise it is a false alert.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GRACE = pd.Timedelta(minutes=30)
HORIZON = pd.Timedelta(hours=6)


def backtest(
    alerts: pd.DataFrame,
    labels: pd.DataFrame,
    device_hours: float,
    horizon: pd.Timedelta = HORIZON,
    sources: tuple[str, ...] | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per fault type metrics and fleet-level totals.

    ``device_hours`` is the observed fleet time (devices × hours) for the false-alert rate.
    Returns (per-type table: fault_type, incidents, caught, recall, median_delay_min) and totals
    (recall, precision, false_alerts_per_1000_device_days, alerts).
    """
    if sources is not None and len(alerts):
        alerts = alerts[alerts["source"].isin(sources)]
    machine = labels[labels["category"] != "sensor"] if "category" in labels else labels
    rows = []
    alert_times = (
        {dev: grp["window_end"].sort_values() for dev, grp in alerts.groupby("device_id")}
        if len(alerts)
        else {}
    )
    delays_by_type: dict[str, list[float]] = {}
    caught_by_type: dict[str, int] = {}
    for lab in machine.itertuples():
        times = alert_times.get(lab.device_id)
        onset = pd.Timestamp(lab.onset)
        stop = min(pd.Timestamp(lab.end) + GRACE, onset + horizon + GRACE)
        hit = None
        if times is not None:
            inside = times[(times >= onset) & (times <= stop)]
            if len(inside):
                hit = (inside.iloc[0] - onset).total_seconds() / 60
        caught_by_type[lab.fault_type] = caught_by_type.get(lab.fault_type, 0) + (hit is not None)
        if hit is not None:
            delays_by_type.setdefault(lab.fault_type, []).append(hit)
    for fault_type, grp in machine.groupby("fault_type"):
        caught = caught_by_type.get(fault_type, 0)
        delays = delays_by_type.get(fault_type, [])
        rows.append(
            {
                "fault_type": fault_type,
                "category": grp["category"].iloc[0] if "category" in grp else "",
                "incidents": len(grp),
                "caught": caught,
                "recall": caught / len(grp),
                "median_delay_min": float(np.median(delays)) if delays else float("nan"),
            }
        )
    per_type = pd.DataFrame(
        rows,
        columns=["fault_type", "category", "incidents", "caught", "recall", "median_delay_min"],
    )
    true_alerts = 0
    if len(alerts):
        lab_by_dev = {d: g for d, g in labels.groupby("device_id")}
        for a in alerts.itertuples():
            g = lab_by_dev.get(a.device_id)
            if (
                g is not None
                and ((g["onset"] <= a.window_end) & (g["end"] + GRACE >= a.window_start)).any()
            ):
                true_alerts += 1
    n_alerts = len(alerts)
    false_alerts = n_alerts - true_alerts
    totals = {
        "incidents": float(len(machine)),
        "recall": float(sum(caught_by_type.values()) / len(machine))
        if len(machine)
        else float("nan"),
        "alerts": float(n_alerts),
        "precision": true_alerts / n_alerts if n_alerts else float("nan"),
        "false_alerts": float(false_alerts),
        "false_alerts_per_1000_device_days": false_alerts / (device_hours / 24) * 1000
        if device_hours
        else float("nan"),
    }
    return per_type, totals
