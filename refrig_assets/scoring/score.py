"""Scoring: run a registered detector over feature windows into the model_scores contract."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.detectors.base import Detector


def with_cohort(features: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Features joined with each device's cohort (devices missing from the registry: 'unknown')."""
    return features.assign(cohort=cohort_of(features["device_id"], registry))


def cohort_of(device_ids: pd.Series, registry: pd.DataFrame) -> np.ndarray:
    """Each device's cohort from the registry ('unknown' for devices it does not hold).

    Each run of equal ids (a device's windows, in a partition's device order) is looked up
    once and repeated: hashing every window's id cost several times the lookup itself."""
    ids = device_ids.to_numpy()
    edge = np.ones(len(ids), dtype=bool)
    np.not_equal(ids[1:], ids[:-1], out=edge[1:])
    starts = np.flatnonzero(edge)
    firsts = pd.Series(ids[starts])
    cohorts = firsts.map(registry.set_index("device_id")["cohort"]).fillna("unknown").to_numpy()
    return np.repeat(cohorts, np.diff(np.append(starts, len(ids))))


def lookback_hours(detector: Detector) -> int:
    """Whole hours of earlier features a detector needs before the rows it reports."""
    return math.ceil(detector.lookback / pd.Timedelta(hours=1))


def score_windows(
    detector: Detector,
    version: str,
    features: pd.DataFrame,
    scored_at: datetime,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Scores of one detector version for the scorable windows of ``features``.

    Windows before ``since`` only give context (persistence looks back at them); they are not
    returned."""
    contract = load_contract("model_scores")
    out = detector.score(features, since=since)
    if out.empty:
        return contract.empty_frame()
    # One frame built at once: adding columns one by one cost a few windows milliseconds.
    extra = {
        "model_id": detector.config.model_id,
        "model_version": str(version),
        "granularity": detector.config.granularity,
        "scored_at": pd.Timestamp(scored_at),
        "anomaly_flag": out["anomaly_flag"].astype(bool),
    }
    return pd.DataFrame(
        {c: extra[c] if c in extra else out[c] for c in contract.column_names}, index=out.index
    )
