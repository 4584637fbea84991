"""Anomaly detectors behind one interface (see :mod:`refrig_assets.detectors.base`)."""

from refrig_assets.detectors.base import DETECTORS, Detector, build_detector, register_detector
from refrig_assets.detectors.isolation_forest import IsolationForestDetector
from refrig_assets.detectors.statistical_baseline import StatisticalBaselineDetector

__all__ = [
    "DETECTORS",
    "Detector",
    "IsolationForestDetector",
    "StatisticalBaselineDetector",
    "build_detector",
    "register_detector",
]
