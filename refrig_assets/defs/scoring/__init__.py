"""Scoring: one score asset per detector, all in the model_scores contract."""

from refrig_assets.defs.scoring.assets import defs

__all__ = ["defs"]
