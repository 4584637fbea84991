"""Isolation Forest over the whole fleet, on cohort-normalised features."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.normalise import CohortScaler


@register_detector
class IsolationForestDetector(Detector):
    """Fleet model; features are scaled per cohort so device types do not look anomalous."""

    kind = "isolation_forest"

    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        self.scaler = CohortScaler().fit(frame, self.feature_columns)
        x = self.scaler.transform(frame)
        hp = self.config.hyperparameters
        self.forest = IsolationForest(
            n_estimators=int(hp.get("n_estimators", 200)),
            max_samples=min(int(hp.get("max_samples", 2048)), len(x)),
            random_state=int(hp.get("random_state", 0)),
            n_jobs=1,
        ).fit(x)
        return -self.forest.score_samples(x)

    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        x = self.scaler.transform(frame)
        raw = -self.forest.score_samples(x)
        template = "{value:.1f} robust σ {direction} its cohort's typical value"
        return raw, x, [template] * len(self.feature_columns)
