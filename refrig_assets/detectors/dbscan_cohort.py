"""DBSCAN behavioural cohorts: devices grouped by how they run; drifting out of the group is
anomalous.

Training segments devices on their *profiles* (each device's median features over the training
range, scaled robustly across the fleet) with DBSCAN. So that a fleet of 100,000 devices fits
on one machine, DBSCAN runs on a sample of devices (``max_fit_devices``) and every other device
joins the group of its nearest core point. ``eps`` is not a hand-set distance: it is a quantile
(``eps_quantile``) of the distance of each sampled device to its ``min_samples``-th nearest
neighbour, so it adapts to the fleet's units and density.

Profiles are taken at each device's usual context: the features' dependence on the context
features (``features.context``, e.g. the ambient temperature moving condensing temperature and
pressure through the day) is learnt from how they move together inside devices and removed.

Scoring builds a profile per device and ``profile_minutes`` (default: hourly, one score row
per device and hour) and measures its distance to the nearest core point of the device's own
group (devices unseen in training: of any group). The raw score is how much further that is than
where the device sat in training (new devices: than the group's median device), so a device at
the edge of its group is not anomalous for being there, only for moving out. The per-feature
differences to the nearest core point are the contributors.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN
from sklearn.neighbors import KDTree, NearestNeighbors

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.normalise import robust_scale

NOISE = -1
# Scoring queries are split across the CPUs in parts of at least this many points.
MIN_POINTS_PER_THREAD = 50_000


def nearest(tree: KDTree, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``tree.query(x, k=1)`` with the points split across the CPUs: KDTree queries release the
    GIL and each point's answer does not depend on the others, so the result is the same."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(cpus or 1, len(x) // MIN_POINTS_PER_THREAD)
    if workers <= 1:
        return tree.query(x, k=1)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda part: tree.query(part, k=1), np.array_split(x, workers)))
    return np.concatenate([d for d, _ in parts]), np.concatenate([i for _, i in parts])


@register_detector
class DBSCANCohortDetector(Detector):
    """Behavioural groups from DBSCAN on a sample; nearest-core-point distance as the score."""

    kind = "dbscan_cohort"

    def row_minutes(self) -> int:
        return int(self.config.hyperparameter("profile_minutes"))

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One profile per device and ``profile_minutes``: the median of its windows."""
        minutes = self.row_minutes()
        period = pd.Timedelta(minutes=minutes)
        start = frame["window_start"].dt.floor(period)
        keys = [frame["device_id"], start.rename("profile_start")]
        grouped = frame.groupby(keys, sort=True, observed=True)
        profiles = grouped[self.input_columns].median()
        meta = grouped.agg(
            cohort=("cohort", "first"),
            sensor_completeness=("sensor_completeness", "mean"),
            quality_mask=("quality_mask", "max"),
        )
        out = pd.concat([meta, profiles], axis=1).reset_index()
        out = out.rename(columns={"profile_start": "window_start"})
        out["window_end"] = out["window_start"] + period
        return out

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.scale

    def _fit_context(self, frame: pd.DataFrame) -> None:
        """Slopes of each feature on the context features (ambient, ...), from how they move
        together inside devices (pooled least squares on deviations from device medians)."""
        n = len(self.feature_columns)
        self.context_slopes = np.zeros((len(self.context_columns), n))
        if not self.context_columns:
            return
        values = frame[self.input_columns].astype(float)
        self.context_center = values.groupby(frame["device_id"].to_numpy()).median()[
            self.context_columns
        ]
        deviation = values - values.groupby(frame["device_id"].to_numpy()).transform("median")
        complete = deviation.dropna().to_numpy()
        if len(complete) > 2 * len(self.input_columns):
            ctx, feat = complete[:, n:], complete[:, :n]
            self.context_slopes = np.linalg.lstsq(ctx, feat, rcond=None)[0]

    def _adjusted(self, frame: pd.DataFrame) -> np.ndarray:
        """Features as they would read at the device's usual context (NaN stays NaN)."""
        x = frame[self.feature_columns].to_numpy(dtype=float)
        if not self.context_columns:
            return x
        ctx = frame[self.context_columns].to_numpy(dtype=float)
        usual = self.context_center.reindex(frame["device_id"].to_numpy()).to_numpy()
        usual = np.where(np.isnan(usual), np.nanmedian(self.context_center.to_numpy(), 0), usual)
        shift = np.nan_to_num(ctx - usual, nan=0.0)
        return x - shift @ self.context_slopes

    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        min_samples = int(self.config.hyperparameter("min_samples"))
        self._fit_context(frame)
        adjusted = pd.DataFrame(self._adjusted(frame), columns=self.feature_columns)
        device_profiles = adjusted.groupby(frame["device_id"].to_numpy(), sort=True).median()
        device_profiles = device_profiles.dropna()
        if len(device_profiles) <= min_samples:
            raise ValueError(
                f"{self.config.model_id}: {len(device_profiles)} devices with complete profiles, "
                f"need more than min_samples={min_samples}"
            )
        values = device_profiles.to_numpy()
        self.center = np.median(values, axis=0)
        self.scale = robust_scale(values - self.center, floor=1e-6)
        x = self._scaled(values)
        rng = np.random.default_rng(int(self.config.hyperparameter("random_state")))
        n_fit = min(len(x), int(self.config.hyperparameter("max_fit_devices")))
        sample = np.sort(rng.choice(len(x), size=n_fit, replace=False))
        xs = x[sample]
        knn = NearestNeighbors(n_neighbors=min_samples).fit(xs)
        kth = knn.kneighbors(xs)[0][:, -1]
        self.eps = float(
            max(np.quantile(kth, float(self.config.hyperparameter("eps_quantile"))), 1e-6)
        )
        labels = DBSCAN(eps=self.eps, min_samples=min_samples).fit(xs)
        core = labels.core_sample_indices_
        if len(core) == 0:  # no dense region at all: every sampled device is its own anchor
            core = np.arange(len(xs))
            core_labels = np.zeros(len(xs), dtype=int)
        else:
            core_labels = labels.labels_[core]
        self.core_points = xs[core]
        self.core_labels = core_labels
        self.any_core = KDTree(self.core_points)
        self.trees = {
            int(g): KDTree(self.core_points[core_labels == g]) for g in np.unique(core_labels)
        }
        # Every training device (sampled or not) joins the group of its nearest core point.
        nearest = self.any_core.query(x, k=1, return_distance=False)[:, 0]
        self.device_group = pd.Series(core_labels[nearest], index=device_profiles.index)
        self.device_profile = pd.DataFrame(x, index=device_profiles.index)
        # Where each device sat relative to its group in training: drift is the change.
        self.device_distance = pd.Series(0.0, index=device_profiles.index)
        self.group_distance = {}
        for g, tree in self.trees.items():
            rows = (self.device_group == g).to_numpy()
            dist = tree.query(x[rows], k=1)[0][:, 0]
            self.device_distance[rows] = dist
            self.group_distance[g] = float(np.median(dist))
        self.summary = {
            "groups": float(len(self.trees)),
            "noise_share_in_sample": float((labels.labels_ == NOISE).mean()),
            "eps": self.eps,
            "fit_devices": float(n_fit),
        }
        raw, _, _ = self.raw_scores(frame)
        return raw

    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        x = self._scaled(self._adjusted(frame))
        devices = frame["device_id"].to_numpy()
        own = self.device_profile.reindex(devices).to_numpy()
        # A feature missing from a profile is taken as unchanged from the device's own normal.
        x = np.where(np.isnan(x), own, x)
        x = np.nan_to_num(x, nan=0.0)
        group = self.device_group.reindex(devices).to_numpy()
        raw = np.empty(len(frame))
        contrib = np.empty_like(x)
        known = ~np.isnan(group)
        usual = self.device_distance.reindex(devices).to_numpy()
        for g, tree in self.trees.items():
            rows = known & (group == g)
            if rows.any():
                dist, idx = nearest(tree, x[rows])
                raw[rows] = dist[:, 0] - usual[rows]
                contrib[rows] = x[rows] - self.core_points[self.core_labels == g][idx[:, 0]]
        if (~known).any():
            dist, idx = nearest(self.any_core, x[~known])
            nearest_group = self.core_labels[idx[:, 0]]
            usual_new = np.array([self.group_distance[int(g)] for g in nearest_group])
            raw[~known] = dist[:, 0] - usual_new
            contrib[~known] = x[~known] - self.core_points[idx[:, 0]]
        template = "{value} robust σ {direction} its behavioural group"
        return raw, contrib, [template] * len(self.feature_columns)

    def describe(self) -> dict[str, float]:
        """Groups found, share of sampled devices DBSCAN left as noise, eps."""
        return dict(self.summary)
