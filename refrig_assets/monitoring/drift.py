"""Drift statistics in plain numpy: PSI per feature (fleet-wide and per cohort) and KL of scores.

PSI (Population Stability Index) compares the share of windows in each bin of a feature between
a reference (the model's training data) and the current data::

    PSI = sum over bins of (current_share - reference_share) * ln(current_share / reference_share)

Bins are the reference's quantiles, so each holds about the same share of the reference; missing
values get a bin of their own. KL divergence compares a model's score histograms on equal-width
bins over the score range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from refrig_assets.monitoring.settings import DriftSettings

NONE, MODERATE, SIGNIFICANT = "none", "moderate", "significant"
FLEET = "fleet"
ALL_COHORTS = "*"


def _values(values) -> np.ndarray:
    return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)


def psi_bin_edges(reference, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's 1/bins ... (bins-1)/bins quantiles, ties merged."""
    ref = _values(reference)
    ref = ref[~np.isnan(ref)]
    if ref.size == 0:
        return np.array([])
    return np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def bin_shares(values, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin: ``len(edges) + 1`` value bins, then the missing bin.

    A value equal to an edge falls in the bin above it.
    """
    v = _values(values)
    if v.size == 0:
        raise ValueError("cannot compute bin shares of an empty sample")
    missing = np.isnan(v)
    idx = np.searchsorted(edges, v[~missing], side="right")
    counts = np.append(np.bincount(idx, minlength=len(edges) + 1), missing.sum())
    return counts / v.size


def psi(reference, current, bins: int, epsilon: float) -> float:
    """Population Stability Index of ``current`` against ``reference`` (0 = same shape)."""
    edges = psi_bin_edges(reference, bins)
    r = np.maximum(bin_shares(reference, edges), epsilon)
    c = np.maximum(bin_shares(current, edges), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_band(value: float, settings: DriftSettings) -> str:
    """'none' below the moderate bound, 'significant' above the significant bound, else
    'moderate' (both bounds inclusive of moderate)."""
    if value > settings.psi_significant:
        return SIGNIFICANT
    if value >= settings.psi_moderate:
        return MODERATE
    return NONE


def score_histogram(scores, bins: int, score_range: tuple[float, float]) -> np.ndarray:
    """Share of scores in each of ``bins`` equal-width bins over ``score_range``."""
    s = _values(scores)
    s = s[~np.isnan(s)]
    if s.size == 0:
        raise ValueError("cannot compute a histogram of no scores")
    lo, hi = score_range
    counts, _ = np.histogram(np.clip(s, lo, hi), bins=bins, range=(lo, hi))
    return counts / s.size


def kl_divergence(
    current, reference, bins: int, epsilon: float, score_range: tuple[float, float]
) -> float:
    """KL(current || reference) of two score samples: how surprising the current scores are
    under the reference distribution (0 when the histograms match)."""
    p = np.maximum(score_histogram(current, bins, score_range), epsilon)
    q = np.maximum(score_histogram(reference, bins, score_range), epsilon)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def feature_drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    settings: DriftSettings,
    cohort_column: str = "cohort",
) -> pd.DataFrame:
    """PSI of every feature, fleet-wide and within each cohort present on both sides.

    A fleet-wide PSI can stay low while one cohort drifts (its windows are a small share of the
    fleet), so each cohort is compared with its own reference. Slices with fewer than
    ``settings.min_windows`` windows on either side are left out.

    Columns: scope ('fleet' or 'cohort'), cohort ('*' for the fleet), feature, psi, band,
    reference_windows, current_windows.
    """
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise KeyError(f"features missing from the drift inputs: {missing}")
    slices: list[tuple[str, str, pd.DataFrame, pd.DataFrame]] = [
        (FLEET, ALL_COHORTS, reference, current)
    ]
    if cohort_column in reference.columns and cohort_column in current.columns:
        ref_groups = dict(tuple(reference.groupby(cohort_column, sort=True)))
        for cohort, cur in current.groupby(cohort_column, sort=True):
            if cohort in ref_groups:
                slices.append(("cohort", str(cohort), ref_groups[cohort], cur))
    rows = []
    for scope, cohort, ref, cur in slices:
        if len(ref) < settings.min_windows or len(cur) < settings.min_windows:
            continue
        for feature in features:
            value = psi(ref[feature], cur[feature], settings.psi_bins, settings.psi_epsilon)
            rows.append(
                {
                    "scope": scope,
                    "cohort": cohort,
                    "feature": feature,
                    "psi": value,
                    "band": psi_band(value, settings),
                    "reference_windows": len(ref),
                    "current_windows": len(cur),
                }
            )
    columns = [
        "scope",
        "cohort",
        "feature",
        "psi",
        "band",
        "reference_windows",
        "current_windows",
    ]
    return pd.DataFrame(rows, columns=columns)


def top_drifting(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` (feature, slice) rows with the highest PSI, highest first."""
    if table.empty:
        return table
    return table.sort_values(["psi", "feature"], ascending=[False, True]).head(n)


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """A deterministic sample of at most ``max_rows`` rows (the frame itself when smaller)."""
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()
