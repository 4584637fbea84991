"""Calibration of raw detector scores to a shared [0, 1] scale.

A raw score is turned into its tail probability under the training distribution: empirical
below the ``tail_quantile``, an exponential tail fitted to the excesses above it (so scores
beyond anything seen in training still rank). ``anomaly_score = -log10(p) / decades``. Because
the meaning is a probability, a threshold means the same for every detector.
"""

from __future__ import annotations

import numpy as np

_MIN_P = 1e-12


class TailCalibrator:
    """Maps raw scores (higher = more anomalous) to calibrated scores in [0, 1]."""

    def __init__(
        self, tail_quantile: float = 0.95, decades: float = 6.0, reference_size: int = 4096
    ):
        if not 0.5 <= tail_quantile < 1.0:
            raise ValueError("tail_quantile must be in [0.5, 1)")
        self.tail_quantile = tail_quantile
        self.decades = decades
        self.reference_size = reference_size
        self.reference: np.ndarray | None = None
        self.threshold = 0.0
        self.scale = 1.0

    def fit(self, raw: np.ndarray) -> TailCalibrator:
        raw = np.asarray(raw, dtype=float)
        raw = raw[np.isfinite(raw)]
        if raw.size < 10:
            raise ValueError(f"need at least 10 training scores to calibrate, got {raw.size}")
        qs = np.linspace(0, self.tail_quantile, self.reference_size)
        self.reference = np.quantile(raw, qs)
        self.threshold = float(np.quantile(raw, self.tail_quantile))
        excess = raw[raw > self.threshold] - self.threshold
        spread = float(np.std(raw)) or 1.0
        self.scale = float(excess.mean()) if excess.size else spread * 0.1
        self.scale = max(self.scale, 1e-9 * spread, 1e-12)
        return self

    def tail_probability(self, raw: np.ndarray) -> np.ndarray:
        """P(training raw score >= raw)."""
        if self.reference is None:
            raise RuntimeError("calibrator is not fitted")
        raw = np.asarray(raw, dtype=float)
        body = (
            1.0
            - np.searchsorted(self.reference, raw, side="right")
            / self.reference.size
            * self.tail_quantile
        )
        tail = (1.0 - self.tail_quantile) * np.exp(-(raw - self.threshold) / self.scale)
        p = np.where(raw > self.threshold, tail, np.maximum(body, 1.0 - self.tail_quantile))
        return np.clip(np.nan_to_num(p, nan=1.0), _MIN_P, 1.0)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated anomaly scores in [0, 1]."""
        return np.clip(-np.log10(self.tail_probability(raw)) / self.decades, 0.0, 1.0)
