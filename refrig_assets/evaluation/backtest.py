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


# ----------------------------------------------------------------------------- incidents
INCIDENT_COLUMNS = [
    "fault_type",
    "category",
    "faults",
    "caught",
    "recall",
    "median_delay_min",
    "incidents_per_fault",
    "cause_accuracy",
    "causes_named",
    "severity_mix",
]


def _fault_events(labels: pd.DataFrame, devices: pd.DataFrame | None) -> pd.DataFrame:
    """Labelled faults as events to catch: one per device fault, one per site for a site-wide
    event (every device of the site carries its label)."""
    labels = labels.reset_index(drop=True)
    site_wide = (
        labels["category"] == "site" if "category" in labels else np.zeros(len(labels), bool)
    )
    events = labels[~site_wide].assign(scope="device", key=labels.loc[~site_wide, "device_id"])
    if site_wide.any() and devices is not None and "site_id" in devices:
        site_of = devices.set_index("device_id")["site_id"]
        sites = labels[site_wide].assign(site_id=lambda f: f["device_id"].map(site_of))
        grouped = sites.groupby(
            ["site_id", "fault_type", "category", "onset", "end"], as_index=False
        )
        site_events = grouped["device_id"].agg(list).rename(columns={"device_id": "devices"})
        site_events = site_events.assign(scope="site", key=site_events["site_id"])
        events = pd.concat([events, site_events], ignore_index=True)
    return events.reset_index(drop=True)


def incident_backtest(
    incidents: pd.DataFrame,
    labels: pd.DataFrame,
    device_hours: float,
    *,
    devices: pd.DataFrame | None = None,
    expected_causes: dict[str, tuple[str, ...]] | None = None,
    window_minutes: float | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Incident-level figures per labelled fault type (:data:`INCIDENT_COLUMNS`) and totals.

    ``incidents``: device_incidents rows (e.g. ``build_incidents(...).incidents``). Operators
    see the incidents that are not inhibited; those are the ones counted. An incident belongs
    to a labelled fault when it is on the fault's device (or site, for a site-wide fault, where
    the site incident and the site's device incidents of a site cause count; a device's own
    fault there is not the site's) and its windows overlap the fault
    (plus :data:`GRACE`). Per fault type: recall, median delay from onset to the end of the
    incident's first window, incidents per caught fault, cause accuracy (the earliest incident
    of each caught fault names one of ``expected_causes[fault_type]``), the causes named and
    the severity mix of those incidents. Totals: incidents, false incidents (belonging to no
    fault) per 1,000 device-days, the severity mix of all incidents and the share CRITICAL.
    """
    labels = _times(labels, ("onset", "end"))
    inc = _times(incidents.reset_index(drop=True), ("first_window_start", "last_window_end"))
    if "inhibited" in inc:
        inc = inc[~inc["inhibited"].fillna(False).astype(bool)].reset_index(drop=True)
    events = _fault_events(labels, devices)
    site_of = (
        devices.set_index("device_id")["site_id"]
        if devices is not None and "site_id" in devices
        else pd.Series(dtype=object)
    )
    inc_site = inc["site_id"] if "site_id" in inc else inc["device_id"].map(site_of)
    inc = inc.assign(_site=inc_site, _i=np.arange(len(inc)))
    if window_minutes is None:
        from refrig_assets.features.windows import window_minutes as fleet_window_minutes

        window_minutes = fleet_window_minutes()
    window = pd.Timedelta(minutes=window_minutes)
    pairs = []
    for scope, part in events.groupby("scope"):
        part = part.assign(_e=part.index)
        if scope == "device":
            merged = part.merge(inc[inc["scope"] == "device"], left_on="key", right_on="device_id")
        else:
            # A site fault is caught by the site's incident or by a device incident of a site
            # cause (a power loss the site quorum did not see); a device's own fault at that
            # site during the event is an incident of its own, not of the event.
            site_like = inc["scope"].eq("site")
            if "kind" in inc:
                site_like |= inc["kind"].eq("site")
            merged = part.merge(inc[site_like], left_on="key", right_on="_site")
        pairs.append(merged[["_e", "_i", "onset", "end", "first_window_start", "last_window_end"]])
    pairs_frame = (
        pd.concat(pairs, ignore_index=True)
        if pairs
        else pd.DataFrame(
            columns=["_e", "_i", "onset", "end", "first_window_start", "last_window_end"]
        )
    )
    hit = (pairs_frame["first_window_start"] <= pairs_frame["end"] + GRACE) & (
        pairs_frame["last_window_end"] >= pairs_frame["onset"]
    )
    pairs_frame = pairs_frame[hit]
    if len(pairs_frame):
        seen = np.minimum(
            pairs_frame["first_window_start"] + window, pairs_frame["last_window_end"]
        )
        delay = ((seen - pairs_frame["onset"]).dt.total_seconds() / 60).clip(lower=0)
    else:  # a fault-free fleet: nothing to belong to
        delay = pd.Series(dtype=float)
    pairs_frame = pairs_frame.assign(delay=delay)
    first = pairs_frame.sort_values(["_e", "first_window_start"]).drop_duplicates("_e")
    expected = expected_causes or {}
    rows = []
    for fault_type, idx in events.groupby("fault_type").groups.items():
        mine = first[first["_e"].isin(idx)]
        primary = inc.loc[mine["_i"].to_numpy()]
        want = expected.get(str(fault_type), ())
        right = primary["cause"].isin(want) if want else pd.Series(dtype=bool)
        per_fault = pairs_frame[pairs_frame["_e"].isin(idx)].groupby("_e")["_i"].nunique()
        rows.append(
            {
                "fault_type": fault_type,
                "category": events.loc[idx, "category"].iloc[0],
                "faults": len(idx),
                "caught": len(mine),
                "recall": len(mine) / len(idx),
                "median_delay_min": float(mine["delay"].median()) if len(mine) else np.nan,
                "incidents_per_fault": float(per_fault.mean()) if len(per_fault) else np.nan,
                "cause_accuracy": float(right.mean()) if len(right) else np.nan,
                "causes_named": _counts(primary["cause"]),
                "severity_mix": _counts(primary["severity"]),
            }
        )
    per_type = pd.DataFrame(rows, columns=INCIDENT_COLUMNS)
    matched = set(pairs_frame["_i"])
    false = inc[~inc["_i"].isin(matched)]
    device_days = device_hours / 24 if device_hours else np.nan
    severity = inc["severity"].value_counts(normalize=True) if len(inc) else pd.Series(dtype=float)
    totals = {
        "incidents": float(len(inc)),
        "false_incidents": float(len(false)),
        "false_incidents_per_1000_device_days": len(false) / device_days * 1000,
        "incidents_per_fault": float(
            pairs_frame.groupby("_e")["_i"].nunique().mean() if len(pairs_frame) else np.nan
        ),
        "recall": float(len(first) / len(events)) if len(events) else np.nan,
        "share_critical": float(severity.get("CRITICAL", 0.0)),
        **{f"share_{k.lower()}": float(v) for k, v in severity.items() if k != "CRITICAL"},
    }
    return per_type, totals


def _counts(values: pd.Series) -> str:
    """``a 3, b 1`` (most common first)."""
    counts = values.astype(str).value_counts()
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def pipeline_incidents(store, stems: list[str], streaming_alerts: pd.DataFrame | None = None):
    """The incidents the pipeline builds over the hours ``stems`` of a data folder: stored
    device_alerts and device_features of those hours, each hour diagnosed by
    :func:`~refrig_assets.incidents.causes.diagnose_partition`, all of it grouped by
    :func:`~refrig_assets.incidents.build.build_incidents` (the function behind the
    device_incidents asset), with ``streaming_alerts`` (device_alerts rows of the streaming
    rules, which the alert store holds rather than the hourly partitions) when given. Returns
    the :class:`IncidentBuild`, the diagnoses and the registry."""
    from refrig_assets.incidents.build import build_incidents
    from refrig_assets.incidents.causes import diagnose_partition

    registry = store.read("device_registry") if store.exists("device_registry") else None
    alerts, diagnoses, quality = [], [], []
    for stem in stems:
        alert_path = store.root / "device_alerts" / f"{stem}.parquet"
        if alert_path.exists():
            alerts.append(pd.read_parquet(alert_path))
        features = store.read("device_features", stem)
        key = f"{stem[:10]}-{stem[11:13]}:00"
        diagnoses.append(diagnose_partition(store, key, features))
        quality.append(features)
    if streaming_alerts is not None and len(streaming_alerts):
        alerts.append(streaming_alerts)
    # Hours stored by different writers (pandas, DuckDB, an empty hour's strings) differ in
    # timestamp units: one UTC type for all before grouping.
    stamps = ("window_start", "window_end", "alert_created_at", "sla_deadline")
    frame = _times(pd.concat(alerts, ignore_index=True), stamps) if alerts else None
    diag = _times(pd.concat(diagnoses, ignore_index=True), stamps)
    build = build_incidents(
        frame,
        diag,
        quality=_times(pd.concat(quality, ignore_index=True), stamps),
        devices=registry,
    )
    return build, diag, registry


def replayed_streaming_alerts(store, stems: list[str]) -> pd.DataFrame:
    """The streaming rules' alerts over the hours ``stems``, replayed on the stored clean
    readings (the streaming sensor does not run inside ``refrig pipeline run``; its alerts live
    in the alert store, not in the hourly partitions)."""
    from refrig_assets.streaming.alerts import firings_to_alerts
    from refrig_assets.streaming.config import load_streaming_settings
    from refrig_assets.streaming.replay import replay

    settings = load_streaming_settings()
    registry = store.read("device_registry") if store.exists("device_registry") else None
    frames = []
    for stem in stems:
        if store.exists("clean_readings", stem):
            frame = store.read("clean_readings", stem)
            frames.append(frame[[c for c in ["device_id", "ts", *settings.sensors] if c in frame]])
    firings = replay(frames, registry, settings)
    return firings_to_alerts(firings, registry, settings, run_id="backtest-replay")
