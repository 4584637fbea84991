"""The detector interface every model implements.

A detector fits on window features and scores them as calibrated anomaly scores in [0, 1] with
per-window contributors. Subclasses implement two methods — :meth:`Detector.fit_raw` and
:meth:`Detector.raw_scores` — and register themselves with :func:`register_detector`; adding a
model is one file in ``models/`` and one class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import joblib
import numpy as np
import pandas as pd

from refrig_assets.detectors.calibration import TailCalibrator
from refrig_assets.model_config import ModelConfig

DETECTORS: dict[str, type[Detector]] = {}
OUTPUT_COLUMNS = [
    "device_id",
    "window_start",
    "window_end",
    "anomaly_score",
    "anomaly_flag",
    "top_contributors",
    "contributor_detail",
    "confidence",
]


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a detector available under its ``kind``."""
    DETECTORS[cls.kind] = cls
    return cls


def feature_sensor(feature: str) -> str:
    """The sensor a feature column is computed from (``vibration_compressor_max`` → sensor)."""
    from refrig_assets.contracts import load_contract

    col = load_contract("device_features").column(feature)
    return col.extra.get("sensor", feature)


class Detector(ABC):
    """Base class: preparation, calibration, contributors, confidence and persistence."""

    kind: ClassVar[str]

    def __init__(self, config: ModelConfig):
        self.config = config
        cal = config.settings.get("calibration", {})
        self.calibrator = TailCalibrator(
            tail_quantile=float(cal.get("tail_quantile", 0.95)),
            decades=float(cal.get("decades", 6)),
        )
        self.feature_columns = list(config.feature_columns)
        self.training_rows = 0

    # -- what a subclass implements -------------------------------------------------------
    @abstractmethod
    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Fit on scorable training windows; return the raw scores of those windows."""

    @abstractmethod
    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Raw score per row (higher = more anomalous), a (rows × features) contribution matrix
        (signed: positive means above normal), and one evidence template per feature with
        ``{value}`` for the contribution (e.g. ``"{value:.1f}σ from this device's baseline"``)."""

    # -- shared behaviour -----------------------------------------------------------------
    def scorable(self, features: pd.DataFrame) -> pd.DataFrame:
        """Windows complete enough to score (seed rule: sensor_completeness >= 0.5)."""
        floor = float(self.config.settings.get("min_sensor_completeness", 0.5))
        return features[features["sensor_completeness"] >= floor]

    def fit(self, features: pd.DataFrame) -> Detector:
        """Fit on training windows (needs device_id, cohort and the feature columns)."""
        frame = self.scorable(features)
        max_rows = int(self.config.settings.get("training", {}).get("max_rows", 0) or 0)
        if max_rows and len(frame) > max_rows:
            frame = frame.sample(n=max_rows, random_state=0).sort_index()
        if len(frame) < 10:
            raise ValueError(f"{self.config.model_id}: only {len(frame)} scorable training windows")
        raw = self.fit_raw(frame)
        self.calibrator.fit(raw)
        self.training_rows = len(frame)
        return self

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        """Score scorable windows: the model_scores columns a detector is responsible for."""
        frame = self.scorable(features).reset_index(drop=True)
        if frame.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTPUT_COLUMNS})
        raw, contrib, templates = self.raw_scores(frame)
        score = self.calibrator.transform(raw)
        top_k = int(self.config.settings.get("top_contributors", 3))
        tops, details = self._contributors(contrib, templates, top_k)
        penalty = float(self.config.settings.get("confidence_flag_penalty", 0.25))
        flagged = frame["quality_mask"].to_numpy() != 0
        confidence = frame["sensor_completeness"].to_numpy() * np.where(flagged, 1 - penalty, 1.0)
        return pd.DataFrame(
            {
                "device_id": frame["device_id"].to_numpy(),
                "window_start": frame["window_start"].to_numpy(),
                "window_end": frame["window_end"].to_numpy(),
                "anomaly_score": score,
                "anomaly_flag": score >= self.config.flag_threshold,
                "top_contributors": tops,
                "contributor_detail": details,
                "confidence": np.clip(confidence, 0.0, 1.0),
            }
        )

    def _contributors(
        self, contrib: np.ndarray, templates: list[str], top_k: int
    ) -> tuple[np.ndarray, list[str]]:
        """Top sensors per row (by their strongest feature) and the evidence for the first."""
        sensors = [feature_sensor(f) for f in self.feature_columns]
        names = list(dict.fromkeys(sensors))
        magnitude = np.nan_to_num(np.abs(contrib), nan=0.0)
        per_sensor = np.zeros((magnitude.shape[0], len(names)))
        for j, s in enumerate(sensors):
            k = names.index(s)
            per_sensor[:, k] = np.maximum(per_sensor[:, k], magnitude[:, j])
        order = np.argsort(-per_sensor, axis=1, kind="stable")[:, : min(top_k, len(names))]
        labels = np.asarray(names, dtype=object)[order]
        tops = labels[:, 0]
        for c in range(1, labels.shape[1]):
            tops = tops + "," + labels[:, c]
        best = np.argmax(magnitude, axis=1)
        values = contrib[np.arange(len(best)), best]
        details = [
            f"{self.feature_columns[j]} "
            + templates[j].format(value=abs(v), direction="above" if v >= 0 else "below")
            for j, v in zip(best.tolist(), np.nan_to_num(values).tolist(), strict=True)
        ]
        return tops, details

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "detector.joblib"
        joblib.dump(self, path)
        return path

    @staticmethod
    def load(directory: Path) -> Detector:
        return joblib.load(Path(directory) / "detector.joblib")


def build_detector(config: ModelConfig) -> Detector:
    """Instantiate the detector class named by a config's ``detector`` key."""
    import refrig_assets.detectors  # noqa: F401  (registers the built-in detectors)

    try:
        cls = DETECTORS[config.detector]
    except KeyError:
        raise ValueError(
            f"{config.path}: unknown detector {config.detector!r} (known: {sorted(DETECTORS)})"
        ) from None
    return cls(config)
