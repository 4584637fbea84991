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

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors

from refrig_assets.detectors.base import Detector, NotTrainable, register_detector
from refrig_assets.detectors.normalise import robust_scale
from refrig_assets.detectors.uninformative import unreported_cause

NOISE = -1
# Scoring queries are split across the CPUs in parts of at least this many points.
MIN_POINTS_PER_THREAD = 50_000
# Points per k-d tree leaf: the cheapest search over a few thousand core points in 7 features
# (16, scipy's default, costs about 20 % more per query; the answer is the same).
LEAF_SIZE = 32


class NearestCore:
    """Exact nearest point of a fixed set (a group's core points) for each query point.

    The search is scipy's k-d tree (about 1.7× cheaper per query than scikit-learn's at the
    same answer). The distance is then taken again from the point found, one feature after the
    other, in the order scikit-learn's KDTree adds them, so scores do not depend on how a
    library sums (refrig_assets_tests/detectors/test_nearest_core.py holds both to the same
    answers). Queries are split across the CPUs in parts of ``MIN_POINTS_PER_THREAD``."""

    def __init__(self, points: np.ndarray):
        self.points = np.ascontiguousarray(points, dtype=float)
        self.tree = cKDTree(self.points, leafsize=LEAF_SIZE)

    def query(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distance, index into the points, difference query − point) per query row."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = max(1, min(cpus or 1, len(x) // MIN_POINTS_PER_THREAD))
        _, idx = self.tree.query(x, k=1, workers=workers)
        diff = x - self.points[idx]
        return euclidean(diff), idx, diff


def euclidean(diff: np.ndarray) -> np.ndarray:
    """Row norms of ``diff``, the squares added feature by feature from the first."""
    total = diff[:, 0] ** 2
    for j in range(1, diff.shape[1]):
        total += diff[:, j] ** 2
    return np.sqrt(total)


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
        profiles = adjusted.groupby(frame["device_id"].to_numpy(), sort=True).median()
        device_profiles = profiles.dropna()
        unreported = [c for c in profiles.columns if profiles[c].isna().all()]
        if len(device_profiles) <= min_samples and unreported and len(profiles) > min_samples:
            # Not a small fleet: a feature no device has (a sensor missing from every file)
            # leaves no profile complete.
            cause, setting = unreported_cause(unreported)
            raise NotTrainable(
                self.config.model_id,
                f"no device has a value of {', '.join(unreported)}: {cause}",
                setting,
            )
        if len(device_profiles) <= min_samples:
            # Groups of min_samples neighbours need more devices than that: a small (pilot)
            # fleet is recorded as not trained, and trains once it has grown.
            raise NotTrainable(
                self.config.model_id,
                f"fleet too small: {len(device_profiles)} devices with complete profiles "
                f"<= hyperparameters.min_samples {min_samples}",
                "hyperparameters.min_samples",
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
        any_core, groups = self._searchers()
        # Every training device (sampled or not) joins the group of its nearest core point.
        nearest = any_core.query(x)[1]
        self.device_group = pd.Series(core_labels[nearest], index=device_profiles.index)
        self.device_profile = pd.DataFrame(x, index=device_profiles.index)
        # Where each device sat relative to its group in training: drift is the change.
        self.device_distance = pd.Series(0.0, index=device_profiles.index)
        self.group_distance = {}
        for g, search in groups.items():
            rows = (self.device_group == g).to_numpy()
            dist = search.query(x[rows])[0]
            self.device_distance[rows] = dist
            self.group_distance[g] = float(np.median(dist))
        self.summary = {
            "groups": float(len(groups)),
            "noise_share_in_sample": float((labels.labels_ == NOISE).mean()),
            "eps": self.eps,
            "fit_devices": float(n_fit),
        }
        raw, _, _ = self.raw_scores(frame)
        return raw

    def _searchers(self) -> tuple[NearestCore, dict[int, NearestCore]]:
        """Nearest-core-point search over every core point, and over each group's; built from
        the core points once per loaded model (not stored with it)."""
        search = self.__dict__.get("_search")
        if search is None:
            groups = {
                int(g): NearestCore(self.core_points[self.core_labels == g])
                for g in np.unique(self.core_labels)
            }
            search = self._search = (NearestCore(self.core_points), groups)
        return search

    def __getstate__(self) -> dict:
        # The searchers are rebuilt from the core points; models saved before them carried
        # scikit-learn trees of the same points, which nothing reads any more.
        return {k: v for k, v in self.__dict__.items() if k not in ("_search", "trees", "any_core")}

    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        x = self._scaled(self._adjusted(frame))
        # Each row's training device (one lookup for its profile, group and distance).
        at = self.device_profile.index.get_indexer(frame["device_id"].to_numpy())
        known = at >= 0
        own = np.where(known[:, None], self.device_profile.to_numpy()[at], np.nan)
        # A feature missing from a profile is taken as unchanged from the device's own normal.
        x = np.where(np.isnan(x), own, x)
        x = np.nan_to_num(x, nan=0.0)
        group = np.where(known, self.device_group.to_numpy()[at], -1)
        raw = np.empty(len(frame))
        contrib = np.empty_like(x)
        usual = self.device_distance.to_numpy()[at]
        any_core, groups = self._searchers()
        for g, search in groups.items():
            rows = known & (group == g)
            if rows.any():
                dist, _, contrib[rows] = search.query(x[rows])
                raw[rows] = dist - usual[rows]
        if (~known).any():
            dist, idx, contrib[~known] = any_core.query(x[~known])
            nearest_group = self.core_labels[idx]
            usual_new = np.array([self.group_distance[int(g)] for g in nearest_group])
            raw[~known] = dist - usual_new
        template = "{value} robust σ {direction} its behavioural group"
        return raw, contrib, [template] * len(self.feature_columns)

    def describe(self) -> dict[str, float]:
        """Groups found, share of sampled devices DBSCAN left as noise, eps."""
        return dict(self.summary)
