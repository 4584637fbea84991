"""Quality: clean readings with flags, and the quarantine of everything rejected."""

from refrig_assets.defs.quality.assets import defs

__all__ = ["defs"]
