"""Scoring: run a registered detector over feature windows into the model_scores contract."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.detectors.base import Detector
from refrig_assets.detectors.value_runs import per_run


def with_cohort(features: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Features joined with each device's cohort (devices missing from the registry: 'unknown')."""
    return features.assign(cohort=cohort_of(features["device_id"], registry))


def cohort_of(device_ids: pd.Series, registry: pd.DataFrame) -> np.ndarray:
    """Each device's cohort from the registry ('unknown' for devices it does not hold).

    Each run of equal ids (a device's windows, in a partition's device order) is looked up
    once and repeated: hashing every window's id cost several times the lookup itself."""
    cohort = registry.set_index("device_id")["cohort"]
    return per_run(
        device_ids.to_numpy(),
        lambda ids: pd.Series(ids).map(cohort).fillna("unknown").to_numpy(),
    )


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
    out = detector.score_columns(features, since=since)
    rows = 0 if out is None else len(out["anomaly_score"])
    if out is None or rows == 0:
        return contract.empty_frame()
    # One frame built at once, from the detector's arrays (not a frame of them first): adding
    # columns one by one cost a few windows milliseconds, a frame in between a copy of each.
    extra = {
        "model_id": detector.config.model_id,
        "model_version": str(version),
        "granularity": detector.config.granularity,
        "scored_at": pd.Timestamp(scored_at),
        "anomaly_flag": np.asarray(out["anomaly_flag"], dtype=bool),
    }
    return pd.DataFrame(
        {c: extra[c] if c in extra else out[c] for c in contract.column_names},
        index=pd.RangeIndex(rows),
    )
