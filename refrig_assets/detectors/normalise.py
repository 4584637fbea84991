"""Robust per-group scaling shared by the detectors (median and MAD, with floors)."""

from __future__ import annotations

import numpy as np
import pandas as pd

MAD_TO_SIGMA = 1.4826
CLIP = 50.0


class CohortScaler:
    """Scale each feature by its cohort's median and robust spread; unknown cohorts use the fleet."""

    def fit(self, frame: pd.DataFrame, columns: list[str]) -> CohortScaler:
        self.columns = list(columns)
        values = frame[self.columns].astype(float)
        self.fleet_center = values.median().to_numpy()
        fleet_mad = (values - self.fleet_center).abs().median().to_numpy() * MAD_TO_SIGMA
        self.fleet_scale = np.where(fleet_mad > 0, fleet_mad, values.std().fillna(1.0).to_numpy())
        self.fleet_scale = np.maximum(np.nan_to_num(self.fleet_scale, nan=1.0), 1e-6)
        self.center: dict[str, np.ndarray] = {}
        self.scale: dict[str, np.ndarray] = {}
        for cohort, group in values.groupby(frame["cohort"].to_numpy()):
            med = group.median().to_numpy()
            mad = (group - med).abs().median().to_numpy() * MAD_TO_SIGMA
            # A spread far below the fleet's would turn noise into huge z-scores.
            self.center[cohort] = np.where(np.isnan(med), self.fleet_center, med)
            self.scale[cohort] = np.maximum(np.nan_to_num(mad, nan=0.0), 0.1 * self.fleet_scale)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[self.columns].to_numpy(dtype=float, copy=True)
        cohorts = frame["cohort"].to_numpy()
        out = np.empty_like(x)
        for cohort in pd.unique(cohorts):
            idx = cohorts == cohort
            center = self.center.get(cohort, self.fleet_center)
            scale = self.scale.get(cohort, self.fleet_scale)
            out[idx] = (x[idx] - center) / scale
        return np.clip(np.nan_to_num(out, nan=0.0), -CLIP, CLIP)
