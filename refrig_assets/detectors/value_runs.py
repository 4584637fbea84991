"""Per-row lookups done once per run of equal values.

Scored rows are sorted by device and window start, so a device's id (and its cohort) repeats
over each of its windows. Hashing every row's string cost several times finding where the
runs start; looking up each run's first value and repeating the answer gives the same result
per row."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def run_starts(values: np.ndarray) -> np.ndarray | None:
    """Positions where a run of equal consecutive values begins (``None``: values that do not
    compare, e.g. ``pd.NA``; then look up every row)."""
    edge = np.ones(len(values), dtype=bool)
    try:
        np.not_equal(values[1:], values[:-1], out=edge[1:])
    except (TypeError, ValueError):
        return None
    return np.flatnonzero(edge)


def per_run(values: np.ndarray, lookup: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``lookup(values)`` (one answer per value, each depending only on its value) computed on
    the first value of each run of equal values and repeated over the run."""
    starts = run_starts(values)
    if starts is None or len(starts) == len(values):
        return lookup(values)
    return np.repeat(lookup(values[starts]), np.diff(np.append(starts, len(values))))


def factorize_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values)`` (codes, distinct values in order of first occurrence), hashing
    one value per run: a value first occurs at the start of a run."""
    starts = run_starts(values)
    if starts is None or len(starts) == len(values):
        return pd.factorize(values)
    codes, uniques = pd.factorize(values[starts])
    return np.repeat(codes, np.diff(np.append(starts, len(values)))), uniques
