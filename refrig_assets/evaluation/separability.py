"""Which stored features tell a user's labelled anomalies apart from the normal windows.

When alerts and detector scores miss labelled faults, the question is whether the detectors or
the data fall short: a fault no imported sensor shows (a valve closure that moves only a flow
rate the import left out) cannot be detected by any model of these features. Per feature column
of the stored windows, each window's distance from its device's median over the device's
labelled-normal windows, in units of the pooled robust spread of those normal distances, is
compared between anomalous and normal windows as a ROC AUC: 0.5 says the feature does not tell
them apart, 1.0 that every anomalous window lies further out than every normal one. The
baseline uses the labels, so the AUC is what the best per-device distance on that one feature
could reach, an upper bound for a detector trained on normal data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from refrig_assets.detectors.normalise import robust_scale
from refrig_assets.evaluation.labelled import Labels, covered, overlapping, read_between, utc_ns

SEPARABILITY_COLUMNS = [
    "feature",
    "normal_windows",
    "anomalous_windows",
    "auc",
    "normal_q90_sigma",
    "anomalous_median_sigma",
]
# Window columns that are no measurement.
_NOT_FEATURES = {"reading_count", "sensor_completeness", "quality_mask"}


def window_labels(labels: Labels, windows: pd.DataFrame) -> np.ndarray:
    """Per window (device_id, window_start, window_end): 1.0 anomalous, 0.0 normal, NaN when no
    label says (point labels: anomalous when most of the window's labelled points are;
    interval labels: anomalous when an interval of its device overlaps the window)."""
    w = pd.DataFrame(
        {
            "device_id": windows["device_id"].astype(str).to_numpy(),
            "start": utc_ns(windows["window_start"]).to_numpy(),
            "end": utc_ns(windows["window_end"]).to_numpy(),
        }
    )
    if labels.kind == "intervals":
        return overlapping(w, labels.frame, pd.Timedelta(0)).astype(float)
    points = labels.frame.rename(columns={"ts": "t"})[["device_id", "t", "anomaly"]]
    points = points.assign(device_id=points["device_id"].astype(str)).reset_index(drop=True)
    # Each point's window: the windows as predictions scored by their position (+1; 0: none).
    position = covered(points, w.assign(score=np.arange(1, len(w) + 1, dtype=float)))
    inside = position.to_numpy() > 0
    share = (
        pd.Series(points["anomaly"].to_numpy(dtype=float)[inside])
        .groupby(position.to_numpy()[inside].astype(int) - 1)
        .mean()
    )
    out = np.full(len(w), np.nan)
    out[share.index.to_numpy()] = (share.to_numpy() >= 0.5).astype(float)
    return out


def separability(labels: Labels, features: pd.DataFrame) -> pd.DataFrame:
    """:data:`SEPARABILITY_COLUMNS` per numeric feature column of ``features`` that has values
    in both labelled classes, best separating first."""
    y = window_labels(labels, features)
    known = ~np.isnan(y)
    frame, y = features[known].reset_index(drop=True), y[known].astype(bool)
    devices = frame["device_id"].astype(str).to_numpy()
    columns = [
        c
        for c in frame.columns
        if c not in _NOT_FEATURES and pd.api.types.is_numeric_dtype(frame[c].dtype)
    ]
    rows = []
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        normal = pd.Series(np.where(y, np.nan, values))
        centre = normal.groupby(devices).median().reindex(devices).to_numpy()
        distance = values - centre
        usable = np.isfinite(distance)
        if not (usable & y).any() or not (usable & ~y).any():
            continue
        unit = float(robust_scale(distance[usable & ~y][:, None])[0])
        sigma = np.abs(distance[usable]) / unit
        anomalous = y[usable]
        rows.append(
            {
                "feature": column,
                "normal_windows": int((~anomalous).sum()),
                "anomalous_windows": int(anomalous.sum()),
                "auc": float(roc_auc_score(anomalous, sigma)),
                "normal_q90_sigma": float(np.quantile(sigma[~anomalous], 0.9)),
                "anomalous_median_sigma": float(np.median(sigma[anomalous])),
            }
        )
    table = pd.DataFrame(rows, columns=SEPARABILITY_COLUMNS)
    return table.sort_values("auc", ascending=False, kind="stable").reset_index(drop=True)


def stored_separability(
    store,
    labels: Labels,
    start: pd.Timestamp,
    end: pd.Timestamp,
    labelled_devices_only: bool = False,
) -> pd.DataFrame:
    """:func:`separability` of the feature windows a
    :class:`~refrig_assets.core.storage.ParquetStore` holds between ``start`` and ``end`` (of the
    labelled devices for point labels or with ``labelled_devices_only``)."""
    windows = read_between(store, "device_features", start, end, None, "window_start")
    if windows.empty:
        return pd.DataFrame(columns=SEPARABILITY_COLUMNS)
    t = pd.to_datetime(windows["window_start"], utc=True)
    keep = (t >= start) & (t < end)
    if labels.kind == "points" or labelled_devices_only:
        keep &= windows["device_id"].astype(str).isin(labels.devices)
    return separability(labels, windows[keep].reset_index(drop=True))
