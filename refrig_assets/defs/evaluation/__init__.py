"""Evaluation: detection quality of alerts and scores against labelled faults."""

from refrig_assets.defs.evaluation.assets import defs

__all__ = ["defs"]
