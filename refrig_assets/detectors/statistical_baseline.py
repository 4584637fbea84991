"""Per-device statistical baseline: each feature against the device's own normal.

A window's features are taken relative to the device's median over its training windows and
each residual is judged given the other features of the same window (cohort covariance of the
pooled residuals, :class:`~refrig_assets.detectors.normalise.DeviceResiduals`). The raw score is
the largest conditional z-score (``score: conditional``) or the joint chi-square surprise of all
residuals (``score: joint``). Devices without enough history fall back to their cohort's
baseline, judged against the spread between devices of the cohort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.blas_threads import one_blas_thread
from refrig_assets.detectors.normalise import DeviceResiduals


@register_detector
class StatisticalBaselineDetector(Detector):
    """Device baselines, cohort covariance; new devices use their cohort's baseline."""

    kind = "statistical_baseline"

    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        self.residuals = DeviceResiduals(
            int(self.config.hyperparameter("min_device_windows")),
            float(self.config.hyperparameter("covariance_shrinkage")),
        ).fit(frame, self.input_columns, len(self.feature_columns))
        raw, _, _ = self.raw_scores(frame)
        return raw

    @one_blas_thread
    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        joint = self.config.hyperparameter("score") == "joint"
        cz, surprise = self.residuals.evaluate(frame, joint, in_sample=self.fitting)
        raw = surprise if joint else np.abs(cz).max(axis=1)
        template = "{value}σ {direction} this device's baseline, given the rest of the window"
        return raw, cz, [template] * len(self.feature_columns)
