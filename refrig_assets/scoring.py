"""Scoring: run a registered detector over feature windows into the model_scores contract."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from refrig_assets.contracts import load_contract
from refrig_assets.detectors.base import Detector


def with_cohort(features: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Features joined with each device's cohort (devices missing from the registry: 'unknown')."""
    cohort = features["device_id"].map(registry.set_index("device_id")["cohort"])
    return features.assign(cohort=cohort.fillna("unknown").to_numpy())


def score_windows(
    detector: Detector, version: str, features: pd.DataFrame, scored_at: datetime
) -> pd.DataFrame:
    """Scores of one detector version for the scorable windows of ``features``."""
    contract = load_contract("model_scores")
    out = detector.score(features)
    if out.empty:
        return contract.empty_frame()
    out["model_id"] = detector.config.model_id
    out["model_version"] = str(version)
    out["granularity"] = detector.config.granularity
    out["scored_at"] = pd.Timestamp(scored_at)
    out["anomaly_flag"] = out["anomaly_flag"].astype(bool)
    return out[contract.column_names]
