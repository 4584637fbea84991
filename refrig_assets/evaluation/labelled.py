"""Scoring alerts, incidents and detector flags against a user's own labelled history.

Labels come as **points** (``device_id, ts, anomaly``: every labelled reading time, normal ones
included) or as **intervals** (``device_id, start, end[, kind]``: the anomalous periods; the
simulator's ``onset``/``end``/``fault_type`` labels are read as intervals too).

*Point-wise* metrics count evaluation points: the labelled points themselves, or, for interval
labels, every feature window of the evaluated devices (anomalous when it overlaps an interval).
A point is predicted anomalous when a prediction of its device covers it (for a window: covers
its middle). Reported: precision, recall, F1, false-alarm rate (share of normal points
flagged, FAR) and missed-alarm rate (share of anomalous points missed, MAR).

*Event-wise* metrics count episodes: labelled intervals (or runs of anomalous points no more than
``events.max_gap_minutes`` apart) and predicted episodes (overlapping predictions of a device
merged). An event is detected when a prediction overlaps ``[start, end + grace]``; its delay is
from its start to the end of the first such prediction's window (when the prediction was
available; for an incident, the end of its first alert window), never negative. Event precision is the share of predicted episodes that touch a
labelled event (with the same grace).

Predictions come from alerts (every alert window, suppressed repeats included: they still say
the device was alerting), incidents (``first_window_start`` to ``last_window_end``: the fault
incidents; sensor and communications tickets, which say the data was lost rather than that the
machine failed, are their own source, :data:`DATA_LOSS_SOURCE`) and each
detector's score rows: its own ``anomaly_flag`` and, for the threshold sweep, its calibrated
``anomaly_score`` at the thresholds of ``config/evaluation.yaml``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from refrig_assets.core.config import load_config

POINT_COLUMNS = ("device_id", "ts", "anomaly")
INTERVAL_COLUMNS = ("device_id", "start", "end")
POINT_METRICS = [
    "points",
    "anomalous_points",
    "precision",
    "recall",
    "f1",
    "false_alarm_rate",
    "missed_alarm_rate",
]
EVENT_METRICS = [
    "events",
    "events_detected",
    "event_recall",
    "predicted_events",
    "event_precision",
    "median_delay_min",
    "max_delay_min",
]
METRIC_COLUMNS = ["source", *POINT_METRICS, *EVENT_METRICS]


COUNT_COLUMNS = ["points", "anomalous_points", "events", "events_detected", "predicted_events"]
# Incidents that say the data was lost (a sensor ticket, a silent device, a site's
# communications loss), scored apart from the fault incidents.
DATA_LOSS_SOURCE = "data-loss tickets"


class LabelsError(ValueError):
    """A labels file has neither the point nor the interval shape, or values that do not parse."""


@dataclass(frozen=True)
class EvaluationSettings:
    """``config/evaluation.yaml``."""

    grace: pd.Timedelta
    max_gap: pd.Timedelta
    sweep_points: int


def evaluation_settings() -> EvaluationSettings:
    """The evaluation policy of ``config/evaluation.yaml``."""
    s = load_config("evaluation")
    events, sweep = s.section("events"), s.section("sweep")
    return EvaluationSettings(
        grace=pd.Timedelta(minutes=events.number("grace_minutes", minimum=0.0)),
        max_gap=pd.Timedelta(minutes=events.number("max_gap_minutes", minimum=0.0)),
        sweep_points=sweep.number("points", minimum=2, integer=True),
    )


@dataclass
class Labels:
    """Labels in one of the two shapes: ``points`` (device_id, ts, anomaly) or ``intervals``
    (device_id, start, end, kind)."""

    kind: str  # "points" | "intervals"
    frame: pd.DataFrame

    @property
    def devices(self) -> list[str]:
        return sorted(self.frame["device_id"].astype(str).unique())

    @property
    def span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last labelled instant."""
        if self.kind == "points":
            return self.frame["ts"].min(), self.frame["ts"].max()
        return self.frame["start"].min(), self.frame["end"].max()


def utc_ns(values) -> pd.Series:
    """UTC timestamps in nanoseconds (stores mix pandas-written ns and DuckDB-written us)."""
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _utc(values: pd.Series, column: str) -> pd.Series:
    out = pd.to_datetime(values, utc=True, errors="coerce").astype("datetime64[ns, UTC]")
    if out.isna().any():
        bad = values[out.isna()].iloc[0]
        raise LabelsError(f"labels: {column} value {bad!r} is not a time")
    return out


def _truthy(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = values.astype(str).str.strip().str.lower()
    known = text.isin(["1", "0", "true", "false", "1.0", "0.0", "yes", "no"])
    if not known.all():
        raise LabelsError(f"labels: anomaly value {values[~known].iloc[0]!r} is not 0/1")
    return text.isin(["1", "true", "1.0", "yes"])


def parse_labels(frame: pd.DataFrame) -> Labels:
    """Labels from a frame of either shape (see the module docstring)."""
    cols = set(frame.columns)
    if set(POINT_COLUMNS) <= cols:
        out = pd.DataFrame(
            {
                "device_id": frame["device_id"].astype(str),
                "ts": _utc(frame["ts"], "ts"),
                "anomaly": _truthy(frame["anomaly"]),
            }
        )
        return Labels("points", out.sort_values(["device_id", "ts"]).reset_index(drop=True))
    if {"device_id", "onset", "end"} <= cols:  # the simulator's labels
        frame = frame.rename(columns={"onset": "start", "fault_type": "kind"})
    if set(INTERVAL_COLUMNS) <= set(frame.columns):
        out = pd.DataFrame(
            {
                "device_id": frame["device_id"].astype(str),
                "start": _utc(frame["start"], "start"),
                "end": _utc(frame["end"], "end"),
                "kind": frame["kind"].astype(str) if "kind" in frame else "anomaly",
            }
        )
        if (out["end"] < out["start"]).any():
            raise LabelsError("labels: an interval ends before it starts")
        return Labels("intervals", out.sort_values(["device_id", "start"]).reset_index(drop=True))
    raise LabelsError(
        "labels need the columns device_id, ts, anomaly (points) or device_id, start, end "
        f"[, kind] (intervals); the file has {', '.join(map(str, frame.columns))}"
    )


def read_labels(path: Path | str) -> Labels:
    """A labels file: CSV (plain or compressed) or Parquet; or a folder of them (the labels
    ``refrig import`` writes, one file per source under ``import_labels/``), read as one."""
    path = Path(path)
    if not path.exists():
        raise LabelsError(f"{path}: labels file not found")
    if not path.is_dir():
        return parse_labels(_read_table(path))
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and (".csv" in p.name.lower() or p.name.lower().endswith(".parquet"))
    )
    if not files:
        raise LabelsError(f"{path}: no CSV or Parquet labels file in this folder")
    parsed = [(p, parse_labels(_read_table(p))) for p in files]
    kinds = {one.kind for _p, one in parsed}
    if len(kinds) > 1:
        shapes = "; ".join(f"{p.relative_to(path)}: {one.kind}" for p, one in parsed)
        raise LabelsError(
            f"{path}: a folder of labels holds one shape, points or intervals ({shapes})"
        )
    frame = pd.concat([one.frame for _p, one in parsed], ignore_index=True)
    order = ["device_id", "ts"] if kinds == {"points"} else ["device_id", "start"]
    return Labels(kinds.pop(), frame.sort_values(order).reset_index(drop=True))


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.name.lower().endswith(".parquet") else pd.read_csv(path)


# --- evaluation points and predictions ----------------------------------------------------------


def evaluation_points(labels: Labels, windows: pd.DataFrame | None) -> pd.DataFrame:
    """(device_id, t, anomaly) to score: the labelled points, or for interval labels the middle
    of every window (device_id, window_start, window_end) of the given devices, anomalous when
    the window overlaps a labelled interval of its device."""
    if labels.kind == "points":
        return labels.frame.rename(columns={"ts": "t"})[["device_id", "t", "anomaly"]]
    if windows is None or windows.empty:
        raise LabelsError("interval labels need the feature windows of the evaluated hours")
    w = windows[["device_id", "window_start", "window_end"]].drop_duplicates()
    w = w.assign(
        device_id=w["device_id"].astype(str),
        window_start=utc_ns(w["window_start"]),
        window_end=utc_ns(w["window_end"]),
    ).reset_index(drop=True)
    anomalous = overlapping(
        w.rename(columns={"window_start": "start", "window_end": "end"}),
        labels.frame,
        pd.Timedelta(0),
    )
    mid = w["window_start"] + (w["window_end"] - w["window_start"]) / 2
    return pd.DataFrame({"device_id": w["device_id"], "t": mid, "anomaly": anomalous})


def overlapping(rows: pd.DataFrame, intervals: pd.DataFrame, slack: pd.Timedelta) -> np.ndarray:
    """For each row (device_id, start, end): does an interval of its device overlap
    ``[start, end]``, the interval extended by ``slack`` at its end?"""
    out = np.zeros(len(rows), dtype=bool)
    if rows.empty or intervals.empty:
        return out
    left = rows[["device_id", "start", "end"]].reset_index(drop=True)
    left = left.assign(_row=np.arange(len(left)))
    right = intervals[["device_id", "start", "end"]].rename(
        columns={"start": "i_start", "end": "i_end"}
    )
    pairs = left.merge(right, on="device_id")
    hit = (pairs["i_start"] < pairs["end"]) & (pairs["i_end"] + slack >= pairs["start"])
    out[pairs.loc[hit, "_row"].to_numpy()] = True
    return out


def covered(points: pd.DataFrame, predictions: pd.DataFrame) -> pd.Series:
    """The highest score of the predictions (device_id, start, end, score) covering each point
    (``start <= t < end``); 0 where none does. Predictions of one device may overlap."""
    best = pd.Series(0.0, index=points.index)
    if points.empty or predictions.empty:
        return best
    p = points[["device_id", "t"]].assign(_i=points.index).sort_values("t")
    for _layer, part in _non_overlapping_layers(predictions):
        hit = pd.merge_asof(
            p,
            part.sort_values("start"),
            left_on="t",
            right_on="start",
            by="device_id",
            direction="backward",
        )
        inside = hit["end"].notna() & (hit["t"] < hit["end"])
        score = hit["score"].where(inside, 0.0).to_numpy(dtype=float)
        best.loc[hit["_i"].to_numpy()] = np.maximum(best.loc[hit["_i"].to_numpy()], score)
    return best


def _non_overlapping_layers(predictions: pd.DataFrame):
    """Split predictions into groups in which no two of a device overlap (batch windows are one
    group; overlapping streaming or incident intervals add a few more)."""
    rest = predictions.sort_values(["device_id", "start"]).reset_index(drop=True)
    layer = 0
    while len(rest):
        # Greedy: keep a row when it starts after the previous kept one of its device ended.
        keep = np.zeros(len(rest), dtype=bool)
        last: dict[str, pd.Timestamp] = {}
        for i, (dev, start, end) in enumerate(
            zip(rest["device_id"], rest["start"], rest["end"], strict=True)
        ):
            if dev not in last or start >= last[dev]:
                keep[i] = True
                last[dev] = end
        yield layer, rest[keep]
        rest = rest[~keep].reset_index(drop=True)
        layer += 1


def pointwise(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, false-alarm and missed-alarm rates of boolean predictions."""
    y, predicted = np.asarray(y, dtype=bool), np.asarray(predicted, dtype=bool)
    tp = int((y & predicted).sum())
    fp = int((~y & predicted).sum())
    fn = int((y & ~predicted).sum())
    tn = int((~y & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = (
        2 * precision * recall / (precision + recall)
        if tp and not np.isnan(precision + recall)
        else (0.0 if tp + fn else float("nan"))
    )
    return {
        "points": float(len(y)),
        "anomalous_points": float(tp + fn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alarm_rate": fp / (fp + tn) if fp + tn else float("nan"),
        "missed_alarm_rate": fn / (tp + fn) if tp + fn else float("nan"),
    }


def label_events(labels: Labels, max_gap: pd.Timedelta) -> pd.DataFrame:
    """Labelled events (device_id, start, end): the intervals, or runs of anomalous points of a
    device with gaps no longer than ``max_gap`` (ended at the run's last point)."""
    if labels.kind == "intervals":
        return labels.frame[["device_id", "start", "end"]].reset_index(drop=True)
    pts = labels.frame
    pts = pts[pts["anomaly"]].sort_values(["device_id", "ts"])
    if pts.empty:
        return pd.DataFrame(
            {
                "device_id": pd.Series(dtype=object),
                "start": pd.Series(dtype="datetime64[ns, UTC]"),
                "end": pd.Series(dtype="datetime64[ns, UTC]"),
            }
        )
    gap = pts.groupby("device_id")["ts"].diff()
    new = gap.isna() | (gap > max_gap)
    run = new.cumsum()
    return (
        pts.groupby(run)
        .agg(device_id=("device_id", "first"), start=("ts", "min"), end=("ts", "max"))
        .reset_index(drop=True)
    )


def merge_episodes(predictions: pd.DataFrame) -> pd.DataFrame:
    """Predicted episodes: overlapping or touching predictions of a device merged into one."""
    if predictions.empty:
        return predictions[["device_id", "start", "end"]]
    p = predictions.sort_values(["device_id", "start"]).reset_index(drop=True)
    running_end = p.groupby("device_id")["end"].cummax()
    prev_end = running_end.groupby(p["device_id"]).shift()
    new = prev_end.isna() | (p["start"] > prev_end)
    run = new.cumsum()
    return (
        p.groupby(run)
        .agg(device_id=("device_id", "first"), start=("start", "min"), end=("end", "max"))
        .reset_index(drop=True)
    )


def _event_hits(
    events: pd.DataFrame, predictions: pd.DataFrame, grace: pd.Timedelta
) -> tuple[pd.DataFrame, pd.Series]:
    """Every (event ``_e``, prediction of its device) pair, and whether the prediction overlaps
    the event extended by ``grace``."""
    ev = events.reset_index(drop=True).assign(_e=np.arange(len(events)))
    seen = predictions["seen"] if "seen" in predictions else predictions["end"]
    pairs = ev.merge(
        predictions[["device_id", "start", "end"]]
        .assign(seen=seen)
        .rename(columns={"start": "p_start", "end": "p_end"}),
        on="device_id",
    )
    hit = (pairs["p_end"] > pairs["start"]) & (pairs["p_start"] <= pairs["end"] + grace)
    return pairs, hit


def detected(events: pd.DataFrame, predictions: pd.DataFrame, grace: pd.Timedelta) -> np.ndarray:
    """Per event (device_id, start, end): does a prediction of its device overlap it (with the
    grace)?"""
    out = np.zeros(len(events), dtype=bool)
    if len(events) and len(predictions):
        pairs, hit = _event_hits(events, predictions, grace)
        out[pairs.loc[hit, "_e"].to_numpy()] = True
    return out


def eventwise(
    events: pd.DataFrame, predictions: pd.DataFrame, grace: pd.Timedelta
) -> dict[str, float]:
    """Event recall, precision and detection delay (see the module docstring)."""
    n = len(events)
    out = {
        "events": float(n),
        "events_detected": 0.0,
        "event_recall": float("nan") if not n else 0.0,
        "predicted_events": 0.0,
        "event_precision": float("nan"),
        "median_delay_min": float("nan"),
        "max_delay_min": float("nan"),
    }
    if predictions.empty:
        return out
    pairs, hit = _event_hits(events, predictions, grace)
    delay = (
        ((pairs.loc[hit, "seen"] - pairs.loc[hit, "start"]).dt.total_seconds() / 60)
        .clip(lower=0)
        .groupby(pairs.loc[hit, "_e"])
        .min()
    )
    episodes = merge_episodes(predictions)
    true_episode = overlapping(episodes, events, grace)
    out.update(
        events_detected=float(len(delay)),
        event_recall=len(delay) / n if n else float("nan"),
        predicted_events=float(len(episodes)),
        event_precision=float(true_episode.mean()) if len(episodes) else float("nan"),
        median_delay_min=float(delay.median()) if len(delay) else float("nan"),
        max_delay_min=float(delay.max()) if len(delay) else float("nan"),
    )
    return out


def evaluate(
    labels: Labels,
    predictions: dict[str, pd.DataFrame],
    windows: pd.DataFrame | None = None,
    settings: EvaluationSettings | None = None,
) -> pd.DataFrame:
    """One row of :data:`METRIC_COLUMNS` per prediction source (``alerts``, ``incidents``,
    ``<model>`` flags, ...). Each source is a frame of flagged intervals (device_id, start,
    end[, score]); only the labelled devices (or, for interval labels, the devices of
    ``windows``) are evaluated."""
    settings = settings or evaluation_settings()
    points = evaluation_points(labels, windows)
    devices = set(points["device_id"])
    events = label_events(labels, settings.max_gap)
    rows = []
    for source, frame in predictions.items():
        pred = _prepared(frame, devices)
        hit = covered(points, pred.assign(score=1.0)) > 0
        row: dict[str, object] = {"source": source}
        row.update(pointwise(points["anomaly"].to_numpy(), hit.to_numpy()))
        row.update(eventwise(events, pred, settings.grace))
        rows.append(row)
    return pd.DataFrame(rows, columns=METRIC_COLUMNS).astype({c: int for c in COUNT_COLUMNS})


def _prepared(frame: pd.DataFrame, devices: set[str]) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(
            {
                "device_id": pd.Series(dtype=object),
                "start": pd.Series(dtype="datetime64[ns, UTC]"),
                "end": pd.Series(dtype="datetime64[ns, UTC]"),
                "score": pd.Series(dtype=float),
            }
        )
    out = pd.DataFrame(
        {
            "device_id": frame["device_id"].astype(str),
            "start": utc_ns(frame["start"]),
            "end": utc_ns(frame["end"]),
            "score": frame["score"].astype(float) if "score" in frame else 1.0,
        }
    )
    if "seen" in frame:
        out["seen"] = utc_ns(frame["seen"])
    return out[out["device_id"].isin(devices)].reset_index(drop=True)


def threshold_sweep(
    labels: Labels,
    scores: dict[str, pd.DataFrame],
    windows: pd.DataFrame | None = None,
    settings: EvaluationSettings | None = None,
) -> pd.DataFrame:
    """Per detector and threshold (evenly spaced in [0, 1]): point-wise precision, recall, F1,
    FAR and MAR when every window scoring at least the threshold is flagged."""
    settings = settings or evaluation_settings()
    points = evaluation_points(labels, windows)
    devices = set(points["device_id"])
    y = points["anomaly"].to_numpy()
    rows = []
    for model_id, frame in scores.items():
        pred = _prepared(frame, devices)
        best = covered(points, pred).to_numpy()
        has_score = covered(points, pred.assign(score=1.0)).to_numpy() > 0
        for threshold in np.linspace(0.0, 1.0, settings.sweep_points):
            flagged = has_score & (best >= threshold)
            rows.append({"source": model_id, "threshold": float(threshold)} | pointwise(y, flagged))
    sweep = pd.DataFrame(rows)
    return sweep.astype({c: int for c in COUNT_COLUMNS[:2]}) if len(sweep) else sweep


def best_thresholds(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per detector, the sweep row with the highest point-wise F1."""
    if sweep.empty:
        return sweep
    ranked = sweep.assign(_f1=sweep["f1"].fillna(-1.0))
    idx = ranked.groupby("source")["_f1"].idxmax()
    return sweep.loc[idx].reset_index(drop=True)


def sweep_plot(sweep: pd.DataFrame, path: Path) -> Path | None:
    """F1, false-alarm and missed-alarm rate against the threshold, one panel per detector, as
    a PNG at ``path`` (None when matplotlib is not installed or there is nothing to plot)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if sweep.empty:
        return None
    sources = sorted(sweep["source"].unique())
    fig, axes = plt.subplots(
        1, len(sources), figsize=(4 * len(sources), 3.2), squeeze=False, sharey=True
    )
    for ax, source in zip(axes[0], sources, strict=True):
        part = sweep[sweep["source"] == source]
        for metric, style in (("f1", "-"), ("false_alarm_rate", "--"), ("missed_alarm_rate", ":")):
            ax.plot(part["threshold"], part[metric], style, label=metric)
        ax.set_title(source)
        ax.set_xlabel("score threshold")
        ax.set_ylim(0, 1)
    axes[0][0].legend(loc="best", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    from refrig_assets.core.storage import durable_replace

    durable_replace(tmp, path)
    return path


# --- reading predictions from the store ---------------------------------------------------------


def _stems_between(store, dataset: str, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Partition stems of ``dataset`` (hourly ``2026-01-01T05`` or daily ``2026-01-01``) whose
    day lies in [start, end]."""
    first, last = f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"
    return [s for s in store.partitions(dataset) if first <= s[:10] <= last]


def read_between(
    store, dataset: str, start, end, columns: list[str] | None, time_column: str
) -> pd.DataFrame:
    """Rows of ``dataset`` whose ``time_column`` lies within an hour of [start, end] (``columns``
    None: every column)."""
    stems = _stems_between(store, dataset, start, end)
    frame = store.read_many(dataset, stems, columns=columns)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    t = pd.to_datetime(frame[time_column], utc=True)
    return frame[(t >= start - pd.Timedelta(hours=1)) & (t <= end + pd.Timedelta(hours=1))]


def incidents_seen(incidents: pd.DataFrame, alerts: pd.DataFrame) -> pd.DataFrame:
    """``incidents`` (device_id, start, end) with ``seen``: when each was first known, for its
    detection delay (``end`` is when it last had a signal, not when it opened). That is the end
    of the first alert window of its device that ends inside it, or, for an incident without
    one (a standalone cause, a sensor ticket), the end of its first feature window of the
    fleet (``window_minutes()``)."""
    from refrig_assets.features.windows import window_minutes

    out = incidents.assign(start=utc_ns(incidents["start"]), end=utc_ns(incidents["end"]))
    first_window = out["start"] + pd.Timedelta(minutes=window_minutes())
    out["seen"] = first_window.where(first_window < out["end"], out["end"])
    if alerts is None or alerts.empty or out.empty:
        return out
    a = pd.DataFrame(
        {"device_id": alerts["device_id"].astype(str), "a_end": utc_ns(alerts["window_end"])}
    )
    pairs = out.reset_index().merge(a, on="device_id")
    inside = pairs[(pairs["a_end"] > pairs["start"]) & (pairs["a_end"] <= pairs["end"])]
    first_alert = inside.groupby("index")["a_end"].min()
    out.loc[first_alert.index, "seen"] = first_alert
    return out


def _per_device(incidents: pd.DataFrame) -> pd.DataFrame:
    """Device incidents as they are, and a site incident (no device) for every device with an
    incident under it (``parent_incident_id``): a power cut is one incident the operator sees
    for the whole outage, while each device's own incident under it may be a short one."""
    own = incidents[incidents["device_id"].notna()]
    if "parent_incident_id" not in incidents.columns:
        return own
    site = incidents[incidents["device_id"].isna()].drop(columns="device_id")
    children = own.loc[own["parent_incident_id"].isin(site["incident_id"]), ["device_id"]]
    children = children.assign(incident_id=own["parent_incident_id"]).drop_duplicates()
    site = site.merge(children, on="incident_id")
    return pd.concat([own, site[own.columns]], ignore_index=True)


def data_loss(incidents: pd.DataFrame) -> np.ndarray:
    """Which incidents (``kind``, ``cause``) say the data was lost rather than that the machine
    failed: kind ``sensor`` (a sensor ticket, a silent device's ticket) or a cause the incident
    policy names for lost data (the sensor tickets' causes, the site communications loss, also
    when a device's own diagnosis names it). A site power loss stays a fault: the machines
    stopped cooling."""
    from refrig_assets.incidents.build import SENSOR_TRACK
    from refrig_assets.incidents.policy import incident_policy

    policy = incident_policy()
    causes = {
        policy.sensor_tickets.cause,
        policy.sensor_tickets.silent_cause,
        policy.site_events.communications_loss_cause,
    }
    return (incidents["kind"].eq(SENSOR_TRACK) | incidents["cause"].isin(causes)).to_numpy()


def _incident_sources(inc: pd.DataFrame, alerts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-device incident intervals (with ``seen``) split into ``incidents`` (faults) and
    :data:`DATA_LOSS_SOURCE`; a site incident is credited to the devices of its own incidents
    under it and classed by its own cause."""
    inc = _per_device(inc)
    lost = data_loss(inc)
    out = {}
    for source, part in (("incidents", inc[~lost]), (DATA_LOSS_SOURCE, inc[lost])):
        part = part.groupby(["incident_id", "device_id"]).agg(
            start=("first_window_start", "min"),
            end=("last_window_end", "max"),
        )
        out[source] = incidents_seen(part.reset_index(), alerts)
    return out


def stored_predictions(
    store, model_ids: list[str], start: pd.Timestamp, end: pd.Timestamp
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], pd.DataFrame]:
    """From a :class:`~refrig_assets.core.storage.ParquetStore`, for the windows between
    ``start`` and ``end``: the flagged intervals per source (``alerts``: batch and streaming,
    ``streaming rules`` alone when they fired, ``incidents`` and
    :data:`DATA_LOSS_SOURCE` (:func:`data_loss`) from the ``device_incidents`` dataset or,
    when it is not materialized, as
    :func:`~refrig_assets.evaluation.backtest.pipeline_incidents` builds them of the stored
    alerts, ``<model> flags`` per detector), the score rows per
    detector for the sweep (device_id, start, end, score) and the feature windows."""
    window_cols = ["device_id", "window_start", "window_end"]
    as_interval = {"window_start": "start", "window_end": "end"}
    flagged: dict[str, pd.DataFrame] = {}
    alerts = read_between(store, "device_alerts", start, end, window_cols, "window_start")
    # Streaming alerts live in the alert store, not in the hourly partitions: replayed on the
    # stored clean readings of the hours, as the backtest does.
    from refrig_assets.evaluation.backtest import replayed_streaming_alerts

    hours = [s for s in _stems_between(store, "clean_readings", start, end) if len(s) > 10]
    try:
        streaming = replayed_streaming_alerts(store, hours) if hours else None
    except Exception as exc:  # batch alerts and scores are still worth reporting
        warnings.warn(f"streaming alerts could not be replayed: {exc!r}", stacklevel=2)
        streaming = None
    if streaming is not None and len(streaming):
        flagged["streaming rules"] = streaming[window_cols].rename(columns=as_interval)
        alerts = pd.concat([alerts, streaming[window_cols]], ignore_index=True)
    flagged["alerts"] = alerts.rename(columns=as_interval)
    cols = [
        "incident_id",
        "device_id",
        "parent_incident_id",
        "kind",
        "cause",
        "first_window_start",
        "last_window_end",
    ]
    inc = None
    if (store.root / "device_incidents").exists():
        inc = read_between(store, "device_incidents", start, end, cols, "last_window_end")
    elif store.partitions("device_features"):
        # Not materialized: the incidents the pipeline builds of these hours' alerts.
        from refrig_assets.evaluation.backtest import pipeline_incidents

        stems = [s for s in _stems_between(store, "device_features", start, end) if len(s) > 10]
        try:
            built = pipeline_incidents(store, stems, streaming)[0].incidents if stems else None
        except Exception as exc:  # alerts and scores are still worth reporting
            warnings.warn(
                f"incidents could not be built: {type(exc).__name__}: {exc}", stacklevel=2
            )
            built = None
        inc = built[cols] if built is not None and set(cols) <= set(built.columns) else None
    if inc is not None:
        flagged.update(_incident_sources(inc, alerts))
    scores: dict[str, pd.DataFrame] = {}
    for model_id in model_ids:
        cols = [*window_cols, "anomaly_score", "anomaly_flag"]
        rows = read_between(store, f"{model_id}_scores", start, end, cols, "window_start")
        if rows.empty:
            continue
        rows = rows.rename(columns={**as_interval, "anomaly_score": "score"})
        scores[model_id] = rows[["device_id", "start", "end", "score"]]
        flagged[f"{model_id} flags"] = rows[rows["anomaly_flag"].astype(bool)]
    windows = read_between(store, "device_features", start, end, window_cols, "window_start")
    return flagged, scores, windows


def evaluate_store(
    store,
    labels: Labels,
    model_ids: list[str],
    start: pd.Timestamp,
    end: pd.Timestamp,
    labelled_devices_only: bool = False,
    settings: EvaluationSettings | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], pd.DataFrame, int]:
    """:func:`evaluate` and :func:`threshold_sweep` of what a store holds between ``start`` and
    ``end``; also the prediction sources found, :func:`recall_by_kind` and
    :func:`data_loss_only`. Interval labels are scored on the feature
    windows of that range: of every device, or with ``labelled_devices_only`` of the labelled
    ones (unlabelled devices otherwise count as normal)."""
    settings = settings or evaluation_settings()
    flagged, scores, windows = stored_predictions(store, model_ids, start, end)
    if labels.kind == "intervals":
        t = pd.to_datetime(windows["window_start"], utc=True)
        windows = windows[(t >= start) & (t < end)]
        if labelled_devices_only:
            windows = windows[windows["device_id"].astype(str).isin(labels.devices)]
        if windows.empty:
            raise LabelsError(
                f"no feature windows between {start} and {end}: run the pipeline over the "
                "labelled hours first"
            )
    else:
        keep = (labels.frame["ts"] >= start) & (labels.frame["ts"] <= end)
        labels = Labels("points", labels.frame[keep].reset_index(drop=True))
    metrics = evaluate(labels, flagged, windows, settings)
    sweep = threshold_sweep(labels, scores, windows, settings)
    devices = set(windows["device_id"].astype(str)) if labels.kind == "intervals" else None
    by_kind = recall_by_kind(labels, flagged, devices, settings)
    return (
        metrics,
        sweep,
        list(flagged),
        by_kind,
        data_loss_only(labels, flagged, windows, settings),
    )


def data_loss_only(
    labels: Labels,
    predictions: dict[str, pd.DataFrame],
    windows: pd.DataFrame | None = None,
    settings: EvaluationSettings | None = None,
) -> int:
    """How many labelled events of the evaluated devices a data-loss ticket touched and no
    fault incident did (what the ``incidents`` source would have counted as detected had it
    included the tickets)."""
    if DATA_LOSS_SOURCE not in predictions:
        return 0
    settings = settings or evaluation_settings()
    devices = set(evaluation_points(labels, windows)["device_id"])
    events = label_events(labels, settings.max_gap)
    events = events[events["device_id"].isin(devices)].reset_index(drop=True)
    lost = detected(events, _prepared(predictions[DATA_LOSS_SOURCE], devices), settings.grace)
    fault = predictions.get("incidents", pd.DataFrame())
    found = detected(events, _prepared(fault, devices), settings.grace)
    return int((lost & ~found).sum())


def recall_by_kind(
    labels: Labels,
    predictions: dict[str, pd.DataFrame],
    devices: set[str] | None = None,
    settings: EvaluationSettings | None = None,
) -> pd.DataFrame:
    """Interval labels with a ``kind``: per source and kind, events, events detected, event
    recall and median delay (which kinds of fault a source catches). Empty for point labels."""
    if labels.kind != "intervals":
        return pd.DataFrame()
    settings = settings or evaluation_settings()
    events = labels.frame
    if devices is not None:
        events = events[events["device_id"].isin(devices)]
    wanted = set(events["device_id"])
    rows = []
    for source, frame in predictions.items():
        pred = _prepared(frame, wanted)
        for kind, part in events.groupby("kind", sort=True):
            found = eventwise(part[["device_id", "start", "end"]], pred, settings.grace)
            rows.append(
                {
                    "source": source,
                    "kind": kind,
                    "events": int(found["events"]),
                    "events_detected": int(found["events_detected"]),
                    "event_recall": found["event_recall"],
                    "median_delay_min": found["median_delay_min"],
                }
            )
    return pd.DataFrame(rows)
