"""Per-device statistical baseline: robust z-scores against each device's own history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.normalise import CLIP, MAD_TO_SIGMA


@register_detector
class StatisticalBaselineDetector(Detector):
    """Median/MAD per device and feature; new devices use their cohort's baseline."""

    kind = "statistical_baseline"

    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        hp = self.config.hyperparameters
        min_windows = int(hp.get("min_device_windows", 4))
        floor_share = float(hp.get("min_scale_vs_cohort", 0.5))
        cols = self.feature_columns
        values = frame[cols].astype(float)
        by_device = values.groupby(frame["device_id"].to_numpy())
        med = by_device.median()
        mad = (values - med.loc[frame["device_id"]].to_numpy()).abs().groupby(
            frame["device_id"].to_numpy()
        ).median() * MAD_TO_SIGMA
        counts = by_device.size()
        device_cohort = frame.groupby("device_id")["cohort"].first()
        cohort_center = med.groupby(device_cohort.loc[med.index].to_numpy()).median()
        cohort_scale = mad.groupby(device_cohort.loc[mad.index].to_numpy()).median()
        fleet_scale = np.maximum(np.nan_to_num(mad.median().to_numpy(), nan=1.0), 1e-3)
        cohort_scale = cohort_scale.clip(lower=pd.Series(fleet_scale * 0.1, index=cols), axis=1)
        floor = cohort_scale.loc[device_cohort.loc[mad.index]].to_numpy() * floor_share
        scale = np.maximum(np.nan_to_num(mad.to_numpy(), nan=0.0), np.nan_to_num(floor, nan=1e-3))
        enough = (counts >= min_windows).to_numpy()
        self.device_center = med[enough]
        self.device_scale = pd.DataFrame(scale[enough], index=med.index[enough], columns=cols)
        self.cohort_center = cohort_center
        self.cohort_scale = cohort_scale
        self.fleet_center = values.median()
        self.fleet_scale = pd.Series(fleet_scale, index=cols)
        raw, _, _ = self.raw_scores(frame)
        return raw

    def _baseline(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        devices = frame["device_id"].to_numpy()
        known = np.isin(devices, self.device_center.index.to_numpy())
        center = np.empty((len(frame), len(self.feature_columns)))
        scale = np.empty_like(center)
        if known.any():
            center[known] = self.device_center.loc[devices[known]].to_numpy()
            scale[known] = self.device_scale.loc[devices[known]].to_numpy()
        if (~known).any():
            cohorts = frame["cohort"].to_numpy()[~known]
            has = np.isin(cohorts, self.cohort_center.index.to_numpy())
            c = np.tile(self.fleet_center.to_numpy(), (len(cohorts), 1))
            s = np.tile(self.fleet_scale.to_numpy(), (len(cohorts), 1))
            if has.any():
                c[has] = self.cohort_center.loc[cohorts[has]].to_numpy()
                s[has] = self.cohort_scale.loc[cohorts[has]].to_numpy()
            center[~known], scale[~known] = c, s
        return center, np.maximum(np.nan_to_num(scale, nan=1.0), 1e-6), known

    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        center, scale, known = self._baseline(frame)
        x = frame[self.feature_columns].to_numpy(dtype=float)
        z = np.clip(np.nan_to_num((x - np.nan_to_num(center)) / scale, nan=0.0), -CLIP, CLIP)
        raw = np.abs(z).max(axis=1)
        self.last_known = known
        template = "{value:.1f}σ {direction} this device's baseline"
        return raw, z, [template] * len(self.feature_columns)
