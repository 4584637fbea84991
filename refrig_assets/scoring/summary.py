"""What a score partition's metadata and distribution check need, gathered piece by piece.

A daily score partition of a large fleet is scored and written in runs of hours, so no step ever
holds all of its scores. :class:`ScoreSummary` keeps only counters and histograms of the pieces
it has seen: window and flag counts, the flagged devices, the score histogram the distribution
check compares (:func:`score_counts`, exactly as over the whole
partition) and a fine histogram with each bin's smallest and largest score for quantiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Quantiles come from a histogram of this many bins over [0, 1]: exact where the rank falls on a
# bin's smallest or largest score (e.g. a mass of scores at 0 or 1), otherwise interpolated
# inside one bin, so never further than 1 / QUANTILE_BINS from the exact quantile.
QUANTILE_BINS = 10_000


def score_counts(scores: np.ndarray, bins: int) -> np.ndarray:
    """How many scores fall in each of ``bins`` equal bins over [0, 1] (NaN left out, the rest
    clipped into the range). Counts of parts of a sample add up to the counts of the whole."""
    s = np.asarray(scores, dtype=float)
    counts, _ = np.histogram(np.clip(s[~np.isnan(s)], 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts


class ScoreSummary:
    """Counters and histograms of model_scores pieces (``anomaly_score``, ``anomaly_flag``,
    ``device_id``) that add up to those of the whole partition."""

    def __init__(self, histogram_bins: int):
        self.histogram_bins = int(histogram_bins)
        self.histogram = np.zeros(self.histogram_bins, dtype=np.int64)
        self.windows = 0
        self.flags = 0
        self.flagged = set()
        self._counts = np.zeros(QUANTILE_BINS, dtype=np.int64)
        self._low = np.full(QUANTILE_BINS, np.inf)
        self._high = np.full(QUANTILE_BINS, -np.inf)

    def add(self, scores: pd.DataFrame) -> None:
        """Count one piece of scores in."""
        score = scores["anomaly_score"].to_numpy(dtype=float)
        flag = scores["anomaly_flag"].to_numpy(dtype=bool)
        self.windows += len(score)
        self.flags += int(flag.sum())
        self.flagged.update(pd.unique(scores["device_id"].to_numpy()[flag]))
        self.histogram += score_counts(score, self.histogram_bins)
        finite = np.clip(score[np.isfinite(score)], 0.0, 1.0)
        bins = np.minimum((finite * QUANTILE_BINS).astype(np.int64), QUANTILE_BINS - 1)
        self._counts += np.bincount(bins, minlength=QUANTILE_BINS)
        np.minimum.at(self._low, bins, finite)
        np.maximum.at(self._high, bins, finite)

    @property
    def flag_rate(self) -> float:
        return self.flags / self.windows if self.windows else 0.0

    @property
    def flagged_devices(self) -> int:
        return len(self.flagged)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the (finite, clipped to [0, 1]) scores, linear between order
        statistics as pandas does; 0.0 when there are none."""
        total = int(self._counts.sum())
        if total == 0:
            return 0.0
        position = q * (total - 1)
        below = int(np.floor(position))
        low, high = self._order_statistic(below), self._order_statistic(min(below + 1, total - 1))
        return float(low + (position - below) * (high - low))

    def _order_statistic(self, rank: int) -> float:
        """The ``rank``-th smallest score (0-based), spread evenly between its bin's extremes."""
        ends = np.cumsum(self._counts)
        b = int(np.searchsorted(ends, rank, side="right"))
        count = int(self._counts[b])
        inside = rank - (int(ends[b]) - count)
        if count == 1:
            return float(self._low[b])
        return float(self._low[b] + (self._high[b] - self._low[b]) * inside / (count - 1))
