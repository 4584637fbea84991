"""Anomaly detectors behind one interface (see :mod:`refrig_assets.detectors.base`).

Every module of this package is imported when a detector is built, so a new model is one
module with one ``@register_detector`` class plus its file in ``models/``.
"""

from refrig_assets.detectors.base import DETECTORS, Detector, build_detector, register_detector

__all__ = ["DETECTORS", "Detector", "build_detector", "register_detector"]
