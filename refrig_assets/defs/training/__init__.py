"""Training: one model asset per detector in ``models/``, registered in MLflow with lineage."""

from refrig_assets.defs.training.assets import defs

__all__ = ["defs"]
