"""Isolation Forest over the whole fleet.

Inputs are either device-relative residuals adjusted for the context features
(``baseline: device``, :class:`~refrig_assets.detectors.normalise.DeviceResiduals`) or features
scaled per cohort (``baseline: cohort``). One forest for the fleet learns which combinations of
residuals occur (normal operating modes of every device type) and isolates the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.blas_threads import one_blas_thread
from refrig_assets.detectors.forest_arrays import ForestArrays
from refrig_assets.detectors.normalise import CohortScaler, DeviceResiduals


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
        from sklearn.ensemble import IsolationForest  # training only: scoring needs no sklearn

        forest = IsolationForest(
            n_estimators=int(self.config.hyperparameter("n_estimators")),
            max_samples=min(int(self.config.hyperparameter("max_samples")), len(x)),
            random_state=int(self.config.hyperparameter("random_state")),
            n_jobs=1,
        ).fit(x)
        self.forest = ForestArrays.from_forest(forest)
        return -forest.score_samples(x)

    @one_blas_thread
    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        x = self._inputs(frame)
        raw = self.forest.anomaly_scores(x)
        unit = "its own baseline" if self.device_relative else "its cohort's typical value"
        template = "{value} robust σ {direction} " + unit
        return raw, x, [template] * len(self.feature_columns)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Artifacts saved before the forest was kept as arrays hold scikit-learn's estimator
        (unpickling it imports scikit-learn): its arrays are taken once, as the version loads."""
        if not isinstance(state.get("forest", ForestArrays), ForestArrays):
            state = {**state, "forest": ForestArrays.from_forest(state["forest"])}
        self.__dict__.update(state)
