"""A fitted Isolation Forest as plain numpy arrays, scored without scikit-learn.

Scoring a registered forest needs only its trees' splits and leaf depths. Held as arrays, a
scoring process neither unpickles scikit-learn's estimators nor imports scikit-learn (about a
second of CPU per process, more than the trees of an hour of windows cost to walk).

Every tree is laid out as a complete binary tree of the forest's greatest depth (slot ``s`` has
children ``2s + 1`` and ``2s + 2``): a leaf above the bottom level fills its whole subtree, so
every row takes exactly ``depth`` steps, and all trees step together, a level at a time, over a
block of rows. The decisions are scikit-learn's (``x <= threshold`` goes left, on the float32
inputs; a missing value goes where the split sent missing values), so each row reaches the
same leaf, and its depths are added in tree order with the same float64 arithmetic as
``IsolationForest.score_samples``: the scores are identical.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

# Rows per block: the (trees × rows) step temporaries of a block stay in the CPU caches.
_BLOCK_ROWS = 2048


@dataclass(frozen=True)
class ForestArrays:
    """The splits and leaf depths of a fitted forest, per tree in complete-tree slots."""

    n_features: int
    depth: int  # levels every row steps through
    features: np.ndarray  # (trees, 2**depth - 1) int32: the input column a slot splits on
    thresholds: np.ndarray  # (trees, 2**depth - 1) float32: largest float32 <= the split
    missing_left: np.ndarray | None  # same shape, bool: where a NaN goes (None: right always)
    leaf_depths: np.ndarray  # (trees, 2**depth) float64: depth of the leaf under each bottom slot
    denominator: float  # trees × average path length of the subsample

    @classmethod
    def from_forest(cls, forest: Any) -> ForestArrays:
        """The arrays of a fitted ``sklearn.ensemble.IsolationForest``."""
        from sklearn.ensemble._iforest import _average_path_length

        trees = [estimator.tree_ for estimator in forest.estimators_]
        depth = max(1, max(int(tree.max_depth) for tree in trees))
        inner = 2**depth - 1
        count = len(trees)
        features = np.zeros((count, inner), dtype=np.int32)
        # A slot below a leaf holds +inf and no missing side: every row goes on, left or
        # right, to a bottom slot of the same leaf.
        thresholds = np.full((count, inner), np.inf, dtype=np.float32)
        missing_left = np.zeros((count, inner), dtype=bool)
        leaf_depths = np.zeros((count, inner + 1))
        lengths = forest._decision_path_lengths
        averages = forest._average_path_length_per_tree
        # Trees fitted on a subset of the columns split on positions within it.
        subsets = forest.estimators_features_
        subsample = forest._max_features != forest.n_features_in_
        for k, tree in enumerate(trees):
            left, right = tree.children_left, tree.children_right
            per_leaf = np.asarray(lengths[k] + averages[k] - 1.0)
            below = _float32_at_most(tree.threshold)
            mgl = getattr(tree, "missing_go_to_left", None)
            stack = [(0, 0, 0)]  # (node, slot, level)
            while stack:
                node, slot, level = stack.pop()
                if left[node] < 0:
                    first = last = slot
                    for _ in range(depth - level):
                        first, last = 2 * first + 1, 2 * last + 2
                    leaf_depths[k, first - inner : last - inner + 1] = per_leaf[node]
                    continue
                column = int(tree.feature[node])
                features[k, slot] = subsets[k][column] if subsample else column
                thresholds[k, slot] = below[node]
                if mgl is not None:
                    missing_left[k, slot] = bool(mgl[node])
                stack.append((left[node], 2 * slot + 1, level + 1))
                stack.append((right[node], 2 * slot + 2, level + 1))
        denominator = float(count * _average_path_length([forest._max_samples])[0])
        return cls(
            n_features=int(forest.n_features_in_),
            depth=depth,
            features=features,
            thresholds=thresholds,
            missing_left=missing_left if missing_left.any() else None,
            leaf_depths=leaf_depths,
            denominator=denominator,
        )

    def anomaly_scores(self, x: np.ndarray) -> np.ndarray:
        """``-forest.score_samples(x)`` of the forest these arrays were taken from."""
        values = np.asarray(x, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != self.n_features:
            raise ValueError(
                f"X has shape {values.shape}; the forest was fitted on {self.n_features} features"
            )
        depths = np.zeros(len(values))
        starts = range(0, len(values), _BLOCK_ROWS)

        def add(start: int) -> None:
            self._add_depths(values[start : start + _BLOCK_ROWS], depths[start:])

        # A row's depth never depends on another row's: blocks go to every core (numpy's
        # gathers and comparisons release the GIL).
        cores = _cores()
        if len(starts) > 1 and cores > 1:
            with ThreadPoolExecutor(min(cores, len(starts))) as pool:
                list(pool.map(add, starts))
        else:
            for start in starts:
                add(start)
        if self.denominator == 0:
            return 2 ** -np.ones_like(depths)
        return 2 ** (-(depths / self.denominator))

    def _add_depths(self, block: np.ndarray, out: np.ndarray) -> None:
        """Add each row's leaf depth in every tree, in tree order, to ``out``'s first rows."""
        rows = len(block)
        count, inner = self.features.shape
        flat = np.ascontiguousarray(block).ravel()
        row_start = (np.arange(rows, dtype=np.int32) * self.n_features)[None, :]
        # Slots are numbered from 1 here (children 2s and 2s + 1): one operation less a level.
        tree_start = (np.arange(count, dtype=np.int32) * inner - 1)[:, None]
        features, thresholds = self.features.ravel(), self.thresholds.ravel()
        missing_left = None if self.missing_left is None else self.missing_left.ravel()
        has_nan = bool(np.isnan(flat).any())
        # Preallocated step arrays: a fresh array per operation cost more than the operation.
        slots = np.ones((count, rows), dtype=np.int32)
        at, column = np.empty_like(slots), np.empty_like(slots)
        value = np.empty((count, rows), dtype=np.float32)
        threshold = np.empty_like(value)
        right = np.empty((count, rows), dtype=bool)
        for _ in range(self.depth):
            np.add(slots, tree_start, out=at)
            np.take(features, at, out=column)
            column += row_start
            np.take(flat, column, out=value)
            np.take(thresholds, at, out=threshold)
            np.greater(value, threshold, out=right)
            if has_nan:  # NaN compares False: it goes right unless its split sends it left
                nan = np.isnan(value)
                right |= nan if missing_left is None else nan & ~missing_left[at]
            slots <<= 1
            slots += right
        bottom = slots - (inner + 1) + (np.arange(count, dtype=np.int32) * (inner + 1))[:, None]
        leaf = self.leaf_depths.ravel()[bottom]
        target = out[:rows]
        for k in range(count):  # tree order, as scikit-learn adds them
            target += leaf[k]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _float32_at_most(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold: for a float32 ``x``,
    ``x <= t`` exactly when ``x <= _float32_at_most(t)``."""
    rounded = thresholds.astype(np.float32)
    above = rounded.astype(np.float64) > thresholds
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded
