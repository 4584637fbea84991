"""Features: per device and window statistics, the input of every detector."""

from refrig_assets.defs.features.assets import defs

__all__ = ["defs"]
