"""Isolation Forest over the whole fleet.

Inputs are either device-relative residuals adjusted for the context features
(``baseline: device``, :class:`~refrig_assets.detectors.normalise.DeviceResiduals`) or features
scaled per cohort (``baseline: cohort``). One forest for the fleet learns which combinations of
residuals occur (normal operating modes of every device type) and isolates the rest.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.normalise import CohortScaler, DeviceResiduals

# Rows per block of the tree pass: bounds the per-tree temporaries (leaf indices, path
# lengths) however many rows are scored; a block's rows are scored exactly as alone.
_BLOCK_ROWS = 65_536

# Per forest, each tree's depth added by a leaf (its path length plus the average path length
# of its leaf, minus one): what every scoring call would otherwise add up again per row.
_LEAF_DEPTHS: weakref.WeakKeyDictionary[IsolationForest, list[np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def _leaf_depths(forest: IsolationForest, lengths: list, averages: list) -> list[np.ndarray]:
    found = _LEAF_DEPTHS.get(forest)
    if found is None:
        found = _LEAF_DEPTHS[forest] = [
            np.asarray(length + average - 1.0)
            for length, average in zip(lengths, averages, strict=True)
        ]
    return found


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def forest_anomaly_scores(forest: IsolationForest, x: np.ndarray) -> np.ndarray:
    """``-forest.score_samples(x)``, computed tree by tree in this process's threads.

    The same arithmetic in the same order as scikit-learn's (float32 inputs, each tree's leaf
    depth plus the average path length of its leaf added to each row's running depth in tree
    order), so the scores are identical; scikit-learn dispatches every tree through joblib on
    one thread, which costs a request of a few windows more than the trees themselves and a
    partition one core. Here blocks of rows go through all the trees on every core (a row's
    depth never depends on another row). A forest without the precomputed path lengths
    (another scikit-learn version) is scored by scikit-learn."""
    lengths = getattr(forest, "_decision_path_lengths", None)
    averages = getattr(forest, "_average_path_length_per_tree", None)
    if lengths is None or averages is None:
        return -forest.score_samples(x)
    values = np.asarray(x, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != forest.n_features_in_:
        return -forest.score_samples(x)
    subsample = forest._max_features != values.shape[1]
    depths = np.zeros(len(values), order="F")
    leaf_depths = _leaf_depths(forest, lengths, averages)

    def add_depths(rows: slice) -> None:
        block, out = values[rows], depths[rows]
        for k, (tree, features) in enumerate(
            zip(forest.estimators_, forest.estimators_features_, strict=True)
        ):
            leaves = tree.tree_.apply(block[:, features] if subsample else block)
            out += leaf_depths[k][leaves]

    blocks = [slice(i, i + _BLOCK_ROWS) for i in range(0, len(values), _BLOCK_ROWS)]
    if len(blocks) > 1 and _cores() > 1:  # tree_.apply releases the GIL
        with ThreadPoolExecutor(min(_cores(), len(blocks))) as pool:
            list(pool.map(add_depths, blocks))
    else:
        for rows in blocks:
            add_depths(rows)
    denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])
    return 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))


@register_detector
class IsolationForestDetector(Detector):
    """Fleet model on device-relative (or cohort-scaled) features."""

    kind = "isolation_forest"

    def _inputs(self, frame: pd.DataFrame) -> np.ndarray:
        if self.device_relative:
            if self.config.hyperparameter("inputs") == "conditional":
                return self.residuals.evaluate(frame, joint=False, in_sample=self.fitting)[0]
            return np.nan_to_num(self.residuals.residuals(frame, self.fitting), nan=0.0)
        return self.scaler.transform(frame)

    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        self.device_relative = self.config.hyperparameter("baseline") == "device"
        if self.device_relative:
            self.residuals = DeviceResiduals(
                int(self.config.hyperparameter("min_device_windows")),
                float(self.config.hyperparameter("covariance_shrinkage")),
            ).fit(frame, self.input_columns, len(self.feature_columns))
        else:
            self.scaler = CohortScaler().fit(frame, self.feature_columns)
        x = self._inputs(frame)
        self.forest = IsolationForest(
            n_estimators=int(self.config.hyperparameter("n_estimators")),
            max_samples=min(int(self.config.hyperparameter("max_samples")), len(x)),
            random_state=int(self.config.hyperparameter("random_state")),
            n_jobs=1,
        ).fit(x)
        return -self.forest.score_samples(x)

    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        x = self._inputs(frame)
        raw = forest_anomaly_scores(self.forest, x)
        unit = "its own baseline" if self.device_relative else "its cohort's typical value"
        template = "{value} robust σ {direction} " + unit
        return raw, x, [template] * len(self.feature_columns)
