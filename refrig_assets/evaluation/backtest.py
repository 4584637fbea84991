"""Detection quality against labelled faults: recall, delay, precision, false alerts.

An *incident* is one labelled machine fault of one device (sensor faults are labelled too, but
they are data-quality events, not incidents to catch). It is caught when an alert for that
device (suppressed repeats included: they still show the fault was seen) falls in ``[onset, min(end + grace, onset + horizon + grace)]``; the detection delay is
the time from onset to the end of the first such alert's window. An alert is *true* when it
overlaps some labelled event of its device (plus grace, so the tail of a fault still counts),
otherwise it is a false alert; precision and false alerts count the unsuppressed alerts
operators see. Rates are per 1,000 device-days of observed fleet time.

The same rules apply to one detector's flagged score rows (:func:`score_backtest`), so each
model's own quality is visible even when it alone would not have raised an alert.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GRACE = pd.Timedelta(minutes=30)
HORIZON = pd.Timedelta(hours=6)
PER_TYPE_COLUMNS = [
    "fault_type",
    "category",
    "incidents",
    "caught",
    "recall",
    "median_delay_min",
    "max_delay_min",
    "true_alerts",
]


def _times(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with the given columns as UTC timestamps (concatenated partitions may arrive
    as objects)."""
    return frame.assign(**{c: pd.to_datetime(frame[c], utc=True) for c in columns if c in frame})


def _true_rows(rows: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """For each row (device_id, window_start, window_end): does it overlap a labelled event?"""
    if rows.empty or labels.empty:
        return np.zeros(len(rows), dtype=bool)
    left = rows[["device_id", "window_start", "window_end"]].reset_index(drop=True)
    left = left.assign(_row=np.arange(len(left)))
    pairs = left.merge(labels[["device_id", "onset", "end"]], on="device_id", how="inner")
    hit = (pairs["onset"] <= pairs["window_end"]) & (pairs["end"] + GRACE >= pairs["window_start"])
    out = np.zeros(len(rows), dtype=bool)
    out[pairs.loc[hit, "_row"].to_numpy()] = True
    return out


def _first_detection(
    rows: pd.DataFrame, incidents: pd.DataFrame, horizon: pd.Timedelta
) -> pd.Series:
    """Minutes from onset to the first row inside each incident's detection window (NaN: none)."""
    if rows.empty or incidents.empty:
        return pd.Series(np.nan, index=incidents.index)
    inc = incidents[["device_id", "onset", "end"]].assign(_inc=incidents.index)
    pairs = inc.merge(rows[["device_id", "window_end"]], on="device_id", how="inner")
    stop = np.minimum(pairs["end"] + GRACE, pairs["onset"] + horizon + GRACE)
    inside = pairs[(pairs["window_end"] >= pairs["onset"]) & (pairs["window_end"] <= stop)]
    delay = (inside["window_end"] - inside["onset"]).dt.total_seconds() / 60
    return delay.groupby(inside["_inc"]).min().reindex(incidents.index)


def backtest(
    alerts: pd.DataFrame,
    labels: pd.DataFrame,
    device_hours: float,
    horizon: pd.Timedelta = HORIZON,
    sources: tuple[str, ...] | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per fault type metrics and fleet-level totals for ``alerts``.

    ``device_hours`` is the observed fleet time (devices × hours) for the false-alert rate.
    Returns the per-type table (:data:`PER_TYPE_COLUMNS`) and totals: incidents, recall (and
    ``recall_<category>`` per fault category), alerts, precision, false_alerts,
    false_alerts_per_1000_device_days, median_delay_min.
    """
    if sources is not None and len(alerts):
        alerts = alerts[alerts["source"].isin(sources)]
    detections = _times(alerts.reset_index(drop=True), ("window_start", "window_end"))
    labels = _times(labels, ("onset", "end"))
    incidents = (
        labels[labels["category"] != "sensor"] if "category" in labels else labels
    ).reset_index(drop=True)
    # A repeat suppressed by dedup still shows the fault was detected; operators only see the
    # unsuppressed alerts, so precision and false alerts count those.
    delay = _first_detection(detections, incidents, horizon)
    alerts = (
        detections[~detections["suppressed"].astype(bool)].reset_index(drop=True)
        if "suppressed" in detections
        else detections
    )
    true = _true_rows(alerts, labels)
    attributed = _attribute(alerts[true], incidents)
    rows = []
    for fault_type, idx in incidents.groupby("fault_type").groups.items():
        d = delay.loc[idx].dropna()
        rows.append(
            {
                "fault_type": fault_type,
                "category": incidents.loc[idx, "category"].iloc[0]
                if "category" in incidents
                else "",
                "incidents": len(idx),
                "caught": len(d),
                "recall": len(d) / len(idx),
                "median_delay_min": float(d.median()) if len(d) else float("nan"),
                "max_delay_min": float(d.max()) if len(d) else float("nan"),
                "true_alerts": int((attributed == fault_type).sum()),
            }
        )
    per_type = pd.DataFrame(rows, columns=PER_TYPE_COLUMNS)
    n_alerts = len(alerts)
    false_alerts = int((~true).sum())
    totals = {
        "incidents": float(len(incidents)),
        "recall": float(delay.notna().mean()) if len(incidents) else float("nan"),
        "alerts": float(n_alerts),
        "precision": float(true.mean()) if n_alerts else float("nan"),
        "false_alerts": float(false_alerts),
        "false_alerts_per_1000_device_days": false_alerts / (device_hours / 24) * 1000
        if device_hours
        else float("nan"),
        "median_delay_min": float(delay.median()) if delay.notna().any() else float("nan"),
    }
    if "category" in incidents:
        for category, idx in incidents.groupby("category").groups.items():
            totals[f"recall_{category}"] = float(delay.loc[idx].notna().mean())
    return per_type, totals


def _attribute(true_alerts: pd.DataFrame, incidents: pd.DataFrame) -> pd.Series:
    """The fault type each true alert belongs to (the incident it overlaps; sensor events: '')."""
    if true_alerts.empty or incidents.empty:
        return pd.Series(dtype=object)
    left = true_alerts[["device_id", "window_start", "window_end"]].reset_index(drop=True)
    left = left.assign(_row=np.arange(len(left)))
    pairs = left.merge(incidents[["device_id", "onset", "end", "fault_type"]], on="device_id")
    hit = (pairs["onset"] <= pairs["window_end"]) & (pairs["end"] + GRACE >= pairs["window_start"])
    return pairs[hit].drop_duplicates("_row").set_index("_row")["fault_type"]


def score_backtest(
    scores: pd.DataFrame,
    labels: pd.DataFrame,
    device_hours: float,
    horizon: pd.Timedelta = HORIZON,
    rows_scored: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Per detector: incidents its flags catch, delay, flag precision and false flags.

    ``scores`` needs model_id, model_version, device_id, window_start, window_end and
    anomaly_flag; it may hold only the flagged rows when ``rows_scored`` gives each model's
    row count. False flags are counted once per device and hour (a model flags every window of
    a lasting event), per 1,000 device-days."""
    rows = []
    labels = _times(labels, ("onset", "end"))
    scores = _times(scores, ("window_start", "window_end"))
    incidents = (
        labels[labels["category"] != "sensor"] if "category" in labels else labels
    ).reset_index(drop=True)
    models = sorted(set(scores["model_id"]) | set(rows_scored or {}))
    for model_id in models:
        group = scores[scores["model_id"] == model_id]
        flagged = group[group["anomaly_flag"].astype(bool)].reset_index(drop=True)
        delay = _first_detection(flagged, incidents, horizon)
        true = _true_rows(flagged, labels)
        false = flagged[~true]
        false_hours = false.assign(hour=false["window_start"].dt.floor("h"))[
            ["device_id", "hour"]
        ].drop_duplicates()
        rows.append(
            {
                "model_id": model_id,
                "model_version": ",".join(sorted(flagged["model_version"].astype(str).unique())),
                "rows_scored": int((rows_scored or {}).get(model_id, len(group))),
                "rows_flagged": len(flagged),
                "incidents_caught": int(delay.notna().sum()),
                "recall": float(delay.notna().mean()) if len(incidents) else float("nan"),
                "median_delay_min": float(delay.median()) if delay.notna().any() else float("nan"),
                "flag_precision": float(true.mean()) if len(flagged) else float("nan"),
                "false_flag_device_hours": len(false_hours),
                "false_flags_per_1000_device_days": len(false_hours) / (device_hours / 24) * 1000
                if device_hours
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


SCORE_COLUMNS = ["model_id", "model_version", "device_id", "window_start", "window_end"]


def flagged_scores(store, model_id: str, hour_stems: list[str]) -> tuple[pd.DataFrame, int]:
    """A detector's flagged score rows over the given hours (feature partition file stems, e.g.
    ``2026-01-01T05``) from a :class:`~refrig_assets.core.storage.ParquetStore`, and how many rows it
    scored there. Daily detectors are read from the day partitions of those hours."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from refrig_assets.core.model_config import load_model_config

    hourly = load_model_config(model_id).schedule == "hourly"
    stems = hour_stems if hourly else sorted({s[:10] for s in hour_stems})
    paths = [store.root / f"{model_id}_scores" / f"{s}.parquet" for s in stems]
    paths = [p for p in paths if p.exists()]
    columns = [*SCORE_COLUMNS, "anomaly_flag"]
    if not paths:
        return pd.DataFrame(columns=columns), 0
    flagged = [
        pq.read_table(p, columns=columns, filters=[("anomaly_flag", "=", True)]) for p in paths
    ]
    scored = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    # Permissive: an empty hour's partition has null-typed columns and pandas-written ones ns.
    return pa.concat_tables(flagged, promote_options="permissive").to_pandas(), scored


def fleet_flagged_scores(
    store, model_ids: list[str], hour_stems: list[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """:func:`flagged_scores` of several detectors, concatenated, and each one's row count
    (detectors that scored nothing are left out of the counts)."""
    frames, counts = [], {}
    for model_id in model_ids:
        rows, n = flagged_scores(store, model_id, hour_stems)
        if n:
            counts[model_id] = n
        if len(rows):
            frames.append(rows)
    columns = [*SCORE_COLUMNS, "anomaly_flag"]
    flagged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return flagged, counts


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table for Dagster metadata (two decimals)."""
    if frame.empty:
        return "_(no rows)_"
    return frame.to_markdown(index=False, floatfmt=".2f")
